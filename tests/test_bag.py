"""Bags written with rosbags from the bundled pairs read back as real rclpy messages, byte for byte."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import get_typestore

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from fusion_ros.core.imageio import pair_folders, read_ir, read_visible  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402
from fusion_ros.ros.bag import bag_summary, EPOCH_NS, read_bag_images, STORE, write_pairs_bag  # noqa: E402

PAIRS = Path(__file__).parent / 'data' / 'pairs'
FPS, IR_OFFSET_S = 4.0, 0.01


def stamp_of(msg) -> int:
    """Return a message's header stamp in nanoseconds."""
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def image_padding(raw: bytes) -> set[int]:
    """Return the offsets of the CDR alignment padding bytes in a serialised sensor_msgs/msg/Image."""
    padding: set[int] = set()

    def align4(pos: int) -> int:
        end = pos + (-(pos - 4)) % 4  # alignment counts from the end of the 4-byte encapsulation header
        padding.update(range(pos, end))
        return end

    def after_string(pos: int) -> int:
        return pos + 4 + int.from_bytes(raw[pos:pos + 4], 'little')

    pos = after_string(4 + 8)  # encapsulation header, stamp (sec, nanosec), frame_id
    pos = after_string(align4(pos) + 8)  # height, width, encoding
    align4(pos + 1)  # is_bigendian, then step and the data sequence, both 4-aligned
    return padding


@pytest.fixture(scope='module', params=['sqlite3', 'mcap'])
def bag(request, tmp_path_factory) -> Path:
    """Return a bag of the bundled pairs written with the parametrised storage plugin."""
    path = tmp_path_factory.mktemp('bags') / f'bag_{request.param}'
    assert write_pairs_bag(PAIRS, path, fps=FPS, storage=request.param, ir_offset_s=IR_OFFSET_S) == 7
    return path


def test_summary_counts_every_pair(bag):
    summary = bag_summary(bag)
    assert summary['topics'] == {'/ir/image': {'msgtype': 'sensor_msgs/msg/Image', 'count': 7},
                                 '/visible/image': {'msgtype': 'sensor_msgs/msg/Image', 'count': 7}}
    assert summary['storage'] == bag.name.removeprefix('bag_')
    assert summary['message_count'] == 14 and summary['start_ns'] == EPOCH_NS
    assert summary['duration_s'] == pytest.approx(6 / FPS + IR_OFFSET_S, abs=1e-9)


def test_messages_are_rclpy_images_equal_to_the_source_files(bag):
    messages = list(read_bag_images(bag))
    assert [t for t, _, _ in messages] == ['/visible/image', '/ir/image'] * 7  # log-time order
    assert all(type(msg) is Image for _, _, msg in messages)
    assert all(log_ns == stamp_of(msg) for _, log_ns, msg in messages)
    vis_msgs, ir_msgs = [m for _, _, m in messages[::2]], [m for _, _, m in messages[1::2]]
    pairs = pair_folders(PAIRS / 'ir', PAIRS / 'vi').pairs
    for k, ((ir_path, vis_path), ir_msg, vis_msg) in enumerate(zip(pairs, ir_msgs, vis_msgs, strict=True)):
        ir, vis = read_ir(ir_path), read_visible(vis_path)
        np.testing.assert_array_equal(codec.image_to_array(ir_msg), ir)
        np.testing.assert_array_equal(codec.image_to_array(vis_msg), vis)
        assert ir_msg.encoding == 'mono8' and vis_msg.encoding == ('bgr8' if vis.ndim == 3 else 'mono8')
        assert (ir_msg.header.frame_id, vis_msg.header.frame_id) == ('ir_camera', 'visible_camera')
        assert stamp_of(vis_msg) == EPOCH_NS + k * 250_000_000
        assert stamp_of(ir_msg) - stamp_of(vis_msg) == 10_000_000
    assert any(m.encoding == 'mono8' for m in vis_msgs), 'the TNO samples are gray'


def test_rclpy_serialises_the_stored_bytes(bag):
    # rclpy (Fast CDR) leaves the alignment padding uninitialised; rosbags writes zeros there.
    with Reader(bag) as reader:
        raws = [bytes(raw) for _, _, raw in reader.messages()]
    messages = list(read_bag_images(bag))
    assert len(raws) == len(messages) == 14
    for raw, (_, _, msg) in zip(raws, messages):
        ours = serialize_message(msg)
        padding = image_padding(raw)
        assert raw[:4] == b'\x00\x01\x00\x00' and len(ours) == len(raw) and len(padding) >= 2
        assert all(raw[i] == 0 for i in padding)
        assert bytes(b for i, b in enumerate(ours) if i not in padding) == \
            bytes(b for i, b in enumerate(raw) if i not in padding)


def test_topic_filter(bag):
    assert {t for t, _, _ in read_bag_images(bag, ['/ir/image'])} == {'/ir/image'}
    with pytest.raises(ValueError, match='no Image/CompressedImage/CameraInfo messages on /typo'):
        list(read_bag_images(bag, ['/ir/image', '/typo']))


def test_16_bit_ir_and_an_offset_beyond_the_frame_period(tmp_path):
    pairs = tmp_path / 'pairs'
    (pairs / 'ir').mkdir(parents=True)
    (pairs / 'vi').mkdir()
    rng = np.random.default_rng(0)
    irs = [rng.integers(0, 65536, (6, 8), dtype=np.uint16) for _ in range(3)]
    for k, ir in enumerate(irs):
        assert cv2.imwrite(str(pairs / 'ir' / f'{k}.png'), ir)
        assert cv2.imwrite(str(pairs / 'vi' / f'{k}.png'), rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    assert write_pairs_bag(pairs, tmp_path / 'bag', fps=10, ir_offset_s=0.25, storage='mcap') == 3
    messages = list(read_bag_images(tmp_path / 'bag'))
    log_times = [log_ns for _, log_ns, _ in messages]
    assert log_times == sorted(log_times)
    ir_msgs = [m for t, _, m in messages if t == '/ir/image']
    assert [stamp_of(m) - EPOCH_NS for m in ir_msgs] == [250_000_000, 350_000_000, 450_000_000]
    for ir, msg in zip(irs, ir_msgs, strict=True):
        assert msg.encoding == 'mono16' and not msg.is_bigendian
        np.testing.assert_array_equal(codec.image_to_array(msg), ir)


def test_camera_info_is_read_and_other_types_skipped(tmp_path):
    store = get_typestore(STORE)
    types = store.types
    header = types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](sec=5, nanosec=6),
                                          frame_id='ir_camera')
    info = types['sensor_msgs/msg/CameraInfo'](
        header=header, height=480, width=640, distortion_model='plumb_bob', d=np.zeros(5),
        k=np.arange(9, dtype=np.float64), r=np.eye(3).reshape(-1), p=np.arange(12, dtype=np.float64),
        binning_x=0, binning_y=0,
        roi=types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    with Writer(tmp_path / 'bag', version=9) as writer:
        info_conn = writer.add_connection('/ir/camera_info', 'sensor_msgs/msg/CameraInfo', typestore=store)
        text_conn = writer.add_connection('/note', 'std_msgs/msg/String', typestore=store)
        writer.write(info_conn, 7, store.serialize_cdr(info, 'sensor_msgs/msg/CameraInfo'))
        writer.write(text_conn, 8, store.serialize_cdr(types['std_msgs/msg/String'](data='hi'), 'std_msgs/msg/String'))
    [(topic, log_ns, msg)] = list(read_bag_images(tmp_path / 'bag'))
    assert (topic, log_ns, type(msg)) == ('/ir/camera_info', 7, CameraInfo)
    assert (msg.width, msg.distortion_model, stamp_of(msg)) == (640, 'plumb_bob', 5 * 10**9 + 6)
    np.testing.assert_array_equal(msg.k, np.arange(9))
    with pytest.raises(ValueError, match='/note'):
        list(read_bag_images(tmp_path / 'bag', ['/note']))


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match='folder not found'):
        write_pairs_bag(tmp_path / 'missing', tmp_path / 'b')
    (tmp_path / 'ir').mkdir()
    with pytest.raises(FileNotFoundError, match='vi'):
        write_pairs_bag(tmp_path, tmp_path / 'b')
    (tmp_path / 'vi').mkdir()
    with pytest.raises(ValueError, match='no pairs'):
        write_pairs_bag(tmp_path, tmp_path / 'b')
    with pytest.raises(ValueError, match='storage'):
        write_pairs_bag(PAIRS, tmp_path / 'b', storage='rosbag1')
    with pytest.raises(ValueError, match='fps'):
        write_pairs_bag(PAIRS, tmp_path / 'b', fps=0)
    (tmp_path / 'exists').mkdir()
    with pytest.raises(FileExistsError, match='never overwrite'):
        write_pairs_bag(PAIRS, tmp_path / 'exists')
    (tmp_path / 'ir' / 'a.png').write_bytes(b'not a png')
    (tmp_path / 'vi' / 'a.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='cannot decode'):
        write_pairs_bag(tmp_path, tmp_path / 'half')
    assert not (tmp_path / 'half').exists(), 'a failed bag is removed'
    with pytest.raises(FileNotFoundError, match='bag not found'):
        list(read_bag_images(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='no metadata.yaml'):
        bag_summary(tmp_path / 'exists')
    (tmp_path / 'exists' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 99}\n')
    with pytest.raises(ValueError, match='cannot read bag'):
        list(read_bag_images(tmp_path / 'exists'))
