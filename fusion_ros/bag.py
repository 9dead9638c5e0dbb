"""
rosbag2 files without ROS: write image pairs as sensor_msgs/Image, read them back as rclpy messages.

Bags are written with `rosbags` (pure Python, sqlite3 or MCAP) in CDR, the
bytes rclpy itself would send, and read back through
`rclpy.serialization.deserialize_message`, so a replay publishes exactly the
messages a camera driver would have published.
"""

from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
import yaml

from fusion_ros.imageio import pair_folders, read_ir, read_visible

EPOCH_S = 1_700_000_000          # stamps start here, so they look like real wall-clock stamps
IMAGE = 'sensor_msgs/msg/Image'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
STORAGES = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}


def _image(typestore, array: np.ndarray, stamp_ns: int, frame_id: str):
    """Build a rosbags Image message (mono8/mono16/bgr8 by dtype and channels)."""
    encoding = {(np.dtype(np.uint8), 2): 'mono8', (np.dtype(np.uint16), 2): 'mono16',
                (np.dtype(np.uint8), 3): 'bgr8'}[(array.dtype, array.ndim)]
    array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder('<')))
    types = typestore.types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    header = types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                                          frame_id=frame_id)
    return types[IMAGE](header=header, height=array.shape[0], width=array.shape[1], encoding=encoding,
                        is_bigendian=0, step=array.strides[0], data=array.reshape(-1).view(np.uint8))


def write_pairs_bag(pairs_dir: Path, bag_path: Path, fps: float = 10.0, ir_topic: str = '/ir/image',
                    vis_topic: str = '/visible/image', storage: str = 'sqlite3', ir_offset_s: float = 0.0) -> int:
    """Write the pairs of pairs_dir/ir and pairs_dir/vi (sorted by stem) at `fps`; returns the pair count."""
    pairs_dir, bag_path = Path(pairs_dir), Path(bag_path)
    if storage not in STORAGES:
        raise ValueError(f'storage must be one of {", ".join(STORAGES)}, got {storage!r}')
    if fps <= 0:
        raise ValueError(f'fps must be positive, got {fps}')
    if bag_path.exists():
        raise FileExistsError(f'{bag_path} exists; rosbag2 never overwrites a bag, choose a new path')
    pairs = pair_folders(pairs_dir / 'ir', pairs_dir / 'vi').pairs
    if not pairs:
        raise ValueError(f'no pairs with matching names under {pairs_dir}/ir and {pairs_dir}/vi')
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Writer(bag_path, version=9, storage_plugin=STORAGES[storage]) as writer:
        ir_conn = writer.add_connection(ir_topic, IMAGE, typestore=typestore)
        vis_conn = writer.add_connection(vis_topic, IMAGE, typestore=typestore)
        for k, (ir_path, vis_path) in enumerate(pairs):
            stamp = EPOCH_S * 1_000_000_000 + int(round(k / fps * 1e9))
            ir_stamp = stamp + int(round(ir_offset_s * 1e9))
            for conn, ts, msg in sorted([
                    (ir_conn, ir_stamp, _image(typestore, read_ir(ir_path), ir_stamp, 'ir_camera')),
                    (vis_conn, stamp, _image(typestore, read_visible(vis_path), stamp, 'visible_camera'))],
                    key=lambda item: item[1]):
                writer.write(conn, ts, typestore.serialize_cdr(msg, IMAGE))
    return len(pairs)


def read_bag_images(bag_path: Path, topics: Optional[Sequence[str]] = None) -> Iterator[tuple[str, int, Any]]:
    """Yield (topic, log time ns, rclpy message) for Image and CameraInfo connections, in log-time order."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image
    classes = {IMAGE: Image, CAMERA_INFO: CameraInfo}
    if not Path(bag_path).exists():
        raise FileNotFoundError(f'bag not found: {bag_path}')
    with Reader(bag_path) as reader:
        connections = [c for c in reader.connections
                       if c.msgtype in classes and (topics is None or c.topic in topics)]
        if not connections:
            raise ValueError(f'{bag_path}: no Image/CameraInfo messages on {list(topics) if topics else "any topic"}')
        for conn, timestamp, raw in reader.messages(connections=connections):
            yield conn.topic, timestamp, deserialize_message(bytes(raw), classes[conn.msgtype])


def bag_summary(bag_path: Path) -> dict:
    """Topics with message counts and types, duration and storage of a bag."""
    with Reader(bag_path) as reader:
        topics = {c.topic: {'msgtype': c.msgtype, 'count': c.msgcount} for c in reader.connections}
        duration_s = reader.duration / 1e9
    info = yaml.safe_load((Path(bag_path) / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    return {'topics': topics, 'duration_s': duration_s, 'storage': info['storage_identifier']}
