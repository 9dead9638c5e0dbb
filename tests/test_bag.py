"""Bags written with rosbags read back as rclpy messages, byte for byte."""

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores
from sensor_msgs.msg import Image

from fusion_ros import codec
from fusion_ros.bag import bag_summary, read_bag_images, write_pairs_bag
from fusion_ros.imageio import pair_folders, read_ir, read_visible
from tests.model_fixtures import PAIRS


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_round_trip_through_rclpy_messages(tmp_path, storage):
    bag = tmp_path / 'bag'
    assert write_pairs_bag(PAIRS, bag, fps=4, storage=storage, ir_offset_s=0.01) == 7
    summary = bag_summary(bag)
    assert {t: v['count'] for t, v in summary['topics'].items()} == {'/ir/image': 7, '/visible/image': 7}
    assert summary['storage'] == storage and summary['duration_s'] == pytest.approx(1.5 + 0.01)
    messages = list(read_bag_images(bag))
    ir_msgs = [m for t, _, m in messages if t == '/ir/image']
    vis_msgs = [m for t, _, m in messages if t == '/visible/image']
    assert all(isinstance(m, Image) for m in ir_msgs + vis_msgs)
    for k, ((ir_path, vis_path), ir_msg, vis_msg) in enumerate(zip(pair_folders(PAIRS / 'ir', PAIRS / 'vi').pairs,
                                                                   ir_msgs, vis_msgs)):
        np.testing.assert_array_equal(codec.image_to_array(ir_msg), read_ir(ir_path))
        np.testing.assert_array_equal(codec.image_to_array(vis_msg), read_visible(vis_path))
        vis_ns = vis_msg.header.stamp.sec * 10**9 + vis_msg.header.stamp.nanosec
        ir_ns = ir_msg.header.stamp.sec * 10**9 + ir_msg.header.stamp.nanosec
        assert ir_ns - vis_ns == 10_000_000 and vis_msg.header.frame_id == 'visible_camera'
        assert vis_ns - (vis_msgs[0].header.stamp.sec * 10**9 + vis_msgs[0].header.stamp.nanosec) == k * 250_000_000
    # rclpy's bytes and the bag's bytes have the same layout: same length, and rosbags decodes rclpy's
    # serialisation to the stored message (only CDR alignment padding, which rclpy leaves unset, may differ)
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        raws = [bytes(raw) for conn, _, raw in reader.messages() if conn.topic == '/visible/image']
    for msg, raw in zip(vis_msgs, raws):
        ours, stored = serialize_message(msg), typestore.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
        assert len(ours) == len(raw)
        back = typestore.deserialize_cdr(ours, 'sensor_msgs/msg/Image')
        assert (back.header.stamp.sec, back.header.frame_id, back.encoding, back.step) == \
            (stored.header.stamp.sec, stored.header.frame_id, stored.encoding, stored.step)
        np.testing.assert_array_equal(back.data, stored.data)


def test_errors_name_the_problem(tmp_path):
    (tmp_path / 'ir').mkdir()
    (tmp_path / 'vi').mkdir()
    with pytest.raises(ValueError, match='no pairs'):
        write_pairs_bag(tmp_path, tmp_path / 'b')
    bag = tmp_path / 'exists'
    bag.mkdir()
    with pytest.raises(FileExistsError, match='never overwrites'):
        write_pairs_bag(PAIRS, bag)
    with pytest.raises(FileNotFoundError, match='bag not found'):
        list(read_bag_images(tmp_path / 'missing'))
