"""
Write image pairs to rosbag2 bags and read them back as rclpy messages, without a running ROS.

Bags are written with `rosbags` (pure Python; sqlite3 or MCAP storage, metadata
version 9 as written and read by ROS 2 Jazzy and Kilted) in CDR, the encoding
rclpy itself publishes. They are read back through
`rclpy.serialization.deserialize_message`, so a replay publishes exactly the
messages a camera driver would have published. Importing this module needs no
ROS: rclpy and sensor_msgs are imported only by `read_bag_images`.

With `compressed`, the pairs are written as image_transport's compressed transport
records them: sensor_msgs/msg/CompressedImage on `<topic>/compressed`, infrared as PNG
(16-bit files stay 16-bit), visible as JPEG.
"""

from contextlib import contextmanager
from functools import lru_cache
import math
from pathlib import Path
import shutil
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore
import yaml

from fusion_ros.core import compressed as compression
from fusion_ros.core.imageio import pair_folders, read_ir, read_visible
from fusion_ros.ros.codec import array_to_fields

EPOCH_NS = 1_700_000_000 * 10**9  # first stamp: a plausible wall-clock time (2023-11-14), not 0
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
STORAGES = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
BAG_VERSION = 9  # rosbag2 metadata version of Jazzy and Kilted; rosbags writes 8 or 9
IR_FRAME, VIS_FRAME = 'ir_camera', 'visible_camera'
# Kilted's message definitions; an older rosbags falls back to the newest ROS 2 store it ships.
STORE = getattr(Stores, 'ROS2_KILTED', None) or [s for s in Stores if s.name.startswith('ROS2_')][-1]


@lru_cache(maxsize=1)
def _typestore() -> Typestore:
    """Return the rosbags typestore the bags are serialised with (built once)."""
    return get_typestore(STORE)


def _encoding(array: np.ndarray, path: Path) -> str:
    """Return the Image encoding of a read frame: mono8, mono16 or bgr8."""
    if array.dtype == np.uint8 and array.ndim == 2:
        return 'mono8'
    if array.dtype == np.uint16 and array.ndim == 2:
        return 'mono16'
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return 'bgr8'
    raise ValueError(f'{path}: cannot store a {array.dtype} image of shape {array.shape} as mono8, mono16 or bgr8')


def _header(stamp_ns: int, frame_id: str):
    """Return a rosbags std_msgs/msg/Header."""
    types = _typestore().types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


def _serialized_compressed(array: np.ndarray, path: Path, stamp_ns: int, frame_id: str, codec: str,
                           quality: int) -> bytes:
    """Serialise a frame as a CDR sensor_msgs/msg/CompressedImage in codec (png or jpeg)."""
    text, payload = compression.encode(array, _encoding(array, path), codec, quality=quality)
    msg = _typestore().types[COMPRESSED_IMAGE](header=_header(stamp_ns, frame_id), format=text, data=payload)
    return bytes(_typestore().serialize_cdr(msg, COMPRESSED_IMAGE))


def _serialized_image(array: np.ndarray, path: Path, stamp_ns: int, frame_id: str) -> bytes:
    """Serialise a frame as a CDR sensor_msgs/msg/Image (packed rows, little-endian 16-bit)."""
    types = _typestore().types
    fields = array_to_fields(array, _encoding(array, path))
    header = _header(stamp_ns, frame_id)
    msg = types[IMAGE](header=header, height=fields['height'], width=fields['width'], encoding=fields['encoding'],
                       is_bigendian=0, step=fields['step'], data=np.frombuffer(fields['data'], dtype=np.uint8))
    return bytes(_typestore().serialize_cdr(msg, IMAGE))


def _pairs(pairs_dir: Path) -> list[tuple[Path, Path]]:
    """Return the (IR, visible) files of pairs_dir/ir and pairs_dir/vi matched by stem, sorted."""
    for sub in (pairs_dir, pairs_dir / 'ir', pairs_dir / 'vi'):
        if not sub.is_dir():
            raise FileNotFoundError(f'folder not found: {sub} (a pairs folder holds ir/ and vi/ sub-folders)')
    pairs = pair_folders(pairs_dir / 'ir', pairs_dir / 'vi').pairs
    if not pairs:
        raise ValueError(f'no pairs: no image in {pairs_dir / "ir"} has a namesake (same stem) in {pairs_dir / "vi"}')
    return pairs


def write_pairs_bag(pairs_dir: Path, bag_path: Path, fps: float = 10.0, ir_topic: str = '/ir/image',
                    vis_topic: str = '/visible/image', storage: str = 'sqlite3', ir_offset_s: float = 0.0,
                    compressed: bool = False, jpeg_quality: int = 90) -> int:
    """
    Write the image pairs of a folder to a new rosbag2 bag as sensor_msgs/msg/Image; return the pair count.

    Pairs are pairs_dir/ir and pairs_dir/vi files with equal stems, in stem order.
    Pair k is stamped EPOCH_NS + k / fps seconds (IR: plus ir_offset_s) with frame
    ids 'ir_camera' and 'visible_camera'; the log time of every message equals its
    header stamp, and messages are written in log-time order. IR is mono8, or
    mono16 for 16-bit files; visible is bgr8, or mono8 for gray files. With
    compressed, both are CompressedImage on `<topic>/compressed`: IR as PNG (lossless,
    16-bit kept), visible as JPEG of jpeg_quality. A bag that fails half-way is removed.
    """
    pairs_dir, bag_path = Path(pairs_dir), Path(bag_path)
    if storage not in STORAGES:
        raise ValueError(f'storage must be one of {", ".join(STORAGES)}, got {storage!r}')
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f'fps must be a positive number, got {fps}')
    if not math.isfinite(ir_offset_s):
        raise ValueError(f'ir_offset_s must be a finite number, got {ir_offset_s}')
    if ir_topic == vis_topic:
        raise ValueError(f'IR and visible topics must differ, both are {ir_topic!r}')
    if bag_path.exists():
        raise FileExistsError(f'{bag_path} exists already; rosbag2 (and rosbags) never overwrite a bag, '
                              'remove it or choose a new path')
    pairs = _pairs(pairs_dir)
    offset_ns = round(ir_offset_s * 1e9)
    if EPOCH_NS + offset_ns < 0:
        raise ValueError(f'ir_offset_s {ir_offset_s} would give IR stamps before 1970')
    transport = 'compressed' if compressed else 'raw'
    ir_topic, vis_topic = (compression.transport_topic(t, transport) for t in (ir_topic, vis_topic))
    # (log time, IR before visible on ties, topic, file, reader, frame id, codec), written in this order
    plan: list[tuple[int, int, str, Path, Callable[[Path], np.ndarray], str, str]] = []
    for k, (ir_path, vis_path) in enumerate(pairs):
        stamp = EPOCH_NS + round(k * 1e9 / fps)
        plan.append((stamp + offset_ns, 0, ir_topic, ir_path, read_ir, IR_FRAME, 'png'))
        plan.append((stamp, 1, vis_topic, vis_path, read_visible, VIS_FRAME, 'jpeg'))
    plan.sort(key=lambda entry: entry[:2])
    try:
        with Writer(bag_path, version=BAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
            connections = {topic: writer.add_connection(topic, COMPRESSED_IMAGE if compressed else IMAGE,
                                                        typestore=_typestore())
                           for topic in (ir_topic, vis_topic)}
            for stamp, _, topic, path, read, frame_id, codec in plan:
                data = (_serialized_compressed(read(path), path, stamp, frame_id, codec, jpeg_quality) if compressed
                        else _serialized_image(read(path), path, stamp, frame_id))
                writer.write(connections[topic], stamp, data)
    except BaseException:
        shutil.rmtree(bag_path, ignore_errors=True)
        raise
    return len(pairs)


@contextmanager
def _opened(bag_path: Path) -> Iterator[Reader]:
    """Open a bag with rosbags, turning a missing or unreadable bag into FileNotFoundError or ValueError."""
    bag_path = Path(bag_path)
    if not bag_path.exists():
        raise FileNotFoundError(f'bag not found: {bag_path}')
    if not (bag_path / 'metadata.yaml').is_file():
        raise ValueError(f'not a rosbag2 bag: {bag_path} has no metadata.yaml')
    try:
        reader = Reader(bag_path)
        reader.open()
    except ReaderError as err:
        raise ValueError(f'cannot read bag {bag_path}: {err}') from None
    try:
        yield reader
    finally:
        reader.close()


def read_bag_images(bag_path: Path, topics: Optional[Sequence[str]] = None) -> Iterator[tuple[str, int, Any]]:
    """
    Yield (topic, log time ns, message) for the Image, CompressedImage and CameraInfo messages of a bag, in order.

    Messages are real rclpy sensor_msgs.msg objects, made from the stored CDR
    bytes by rclpy.serialization.deserialize_message, in log-time order. With
    topics given, only those topics are read, and each must hold one of these
    types; other message types in the bag are skipped.
    """
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    classes = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage, CAMERA_INFO: CameraInfo}
    with _opened(bag_path) as reader:
        connections = [c for c in reader.connections
                       if c.msgtype in classes and (topics is None or c.topic in topics)]
        if topics is not None:
            missing = sorted(set(topics) - {c.topic for c in connections})
            if missing:
                raise ValueError(f'{bag_path}: no Image/CompressedImage/CameraInfo messages on {", ".join(missing)}; '
                                 f'the bag has '
                                 f'{", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections) or "no topics"}')
        elif not connections:
            raise ValueError(f'{bag_path}: no {IMAGE}, {COMPRESSED_IMAGE} or {CAMERA_INFO} topics')
        for conn, timestamp, raw in reader.messages(connections=connections):
            yield conn.topic, timestamp, deserialize_message(bytes(raw), classes[conn.msgtype])


def bag_summary(bag_path: Path) -> dict:
    """
    Return a bag's storage, message count, time span and per-topic message type and count.

    Keys: 'storage' ('sqlite3' or 'mcap'), 'message_count', 'start_ns', 'duration_s'
    (last minus first log time) and 'topics' ({topic: {'msgtype', 'count'}}).
    """
    with _opened(bag_path) as reader:
        topics: dict[str, dict[str, Any]] = {}
        for conn in reader.connections:
            entry = topics.setdefault(conn.topic, {'msgtype': conn.msgtype, 'count': 0})
            entry['count'] += conn.msgcount
    info = yaml.safe_load((Path(bag_path) / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    return {
        'storage': info['storage_identifier'],
        'message_count': int(info['message_count']),
        'start_ns': int(info['starting_time']['nanoseconds_since_epoch']),
        'duration_s': int(info['duration']['nanoseconds']) / 1e9,
        'topics': topics,
    }


def camera_topic(bag: Path, topic: str) -> tuple[str, str]:
    """
    Return (topic in the bag, transport) for a camera topic: itself, or image_transport's `<topic>/compressed`.

    A topic holding CompressedImage is compressed whatever its name; a missing topic is returned
    as raw, so that reading it raises the error that lists what the bag has.
    """
    topics = bag_summary(bag)['topics']
    for candidate in (topic, compression.transport_topic(topic, 'compressed')):
        if candidate in topics:
            return candidate, 'compressed' if topics[candidate]['msgtype'] == COMPRESSED_IMAGE else 'raw'
    return topic, 'raw'
