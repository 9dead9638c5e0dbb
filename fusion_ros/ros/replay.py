"""
Replay a rosbag through fusion_node and report quality and latency.

The node runs in process over real DDS, exactly as on the robot. `lockstep`
(the default) publishes one pair and waits for its fused frame before the next,
so every pair is fused and scored; `realtime` publishes at the bag's own pace
and shows what the robot would see: latency and dropped frames. A camera
recorded compressed (CompressedImage on `<topic>/compressed`) is replayed
compressed, into the node's compressed transport.
"""

from dataclasses import dataclass
import json
import os
from pathlib import Path
import random
import threading
import time
from typing import Any, Optional

import numpy as np


@dataclass
class ReplayResult:
    """Fused frames (by visible stamp), the source pairs, their latency, and the node's counters."""

    fused: dict[int, np.ndarray]
    sources: dict[int, tuple[Any, Any]]     # visible stamp -> (ir message, visible message)
    latency_ms: dict[int, float]
    pairs_sent: int
    dropped: int
    rejected: int


def _group_pairs(bag: Path, ir_topic: str, vis_topic: str) -> list[tuple[int, object, object]]:
    """Pair bag messages by equal header stamp (bags from `bag make` stamp both cameras alike)."""
    from fusion_ros.ros.bag import read_bag_images
    from fusion_ros.ros.node import stamp_ns
    ir, vis = {}, {}
    for topic, _, msg in read_bag_images(bag, [ir_topic, vis_topic]):
        (ir if topic == ir_topic else vis)[stamp_ns(msg)] = msg
    return [(s, ir[s], vis[s]) for s in sorted(ir.keys() & vis.keys())]


def replay_bag(bag: Path, model: Optional[Path] = None, ir_topic: str = '/ir/image',
               vis_topic: str = '/visible/image', realtime: bool = False, threads: int = 0,
               timeout_s: float = 60.0) -> ReplayResult:
    """Publish the bag's pairs into an in-process fusion_node and collect what it publishes."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 100)))
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    from fusion_ros.core.compressed import transport_topic
    from fusion_ros.ros import codec
    from fusion_ros.ros.bag import camera_topic
    from fusion_ros.ros.in_process import matched_both_ways, shut_down, SpinThread, wait_until
    from fusion_ros.ros.node import FusionNode, stamp_ns

    (ir_topic, ir_transport), (vis_topic, vis_transport) = camera_topic(bag, ir_topic), camera_topic(bag, vis_topic)
    pairs = _group_pairs(bag, ir_topic, vis_topic)
    if not pairs:
        raise ValueError(f'{bag}: no IR/visible messages with equal stamps on {ir_topic} and {vis_topic}')
    context = rclpy.Context()
    rclpy.init(context=context)
    overrides = [Parameter('threads', value=threads), Parameter('ir.transport', value=ir_transport),
                 Parameter('visible.transport', value=vis_transport)] + \
        ([Parameter('model_path', value=str(model))] if model else [])
    node = FusionNode(context=context, parameter_overrides=overrides)
    peer = rclpy.create_node('fusion_replay', context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    executor.add_node(node)
    executor.add_node(peer)
    fused: dict[int, np.ndarray] = {}
    latency: dict[int, float] = {}
    sent_at: dict[int, float] = {}
    arrived = threading.Event()

    def on_fused(msg: Image) -> None:
        stamp = stamp_ns(msg)
        fused[stamp] = np.array(codec.image_to_array(msg))
        latency[stamp] = (time.perf_counter() - sent_at.get(stamp, time.perf_counter())) * 1000
        arrived.set()
    spinner = SpinThread(executor).start()
    try:
        ok = TransitionCallbackReturn.SUCCESS
        if node.trigger_configure() != ok or node.trigger_activate() != ok:
            raise RuntimeError('fusion_node did not configure/activate; see its log above')
        fused_sub = peer.create_subscription(Image, 'fused/image', on_fused, 10)
        qos = qos_profile_sensor_data if realtime else 10
        pub_ir, pub_vis = (peer.create_publisher(CompressedImage if transport == 'compressed' else Image,
                                                 transport_topic(base, transport), qos)
                           for base, transport in (('ir/image', ir_transport), ('visible/image', vis_transport)))
        if not wait_until(lambda: matched_both_ways(node, (pub_ir, pub_vis), (fused_sub,)), timeout_s):
            raise TimeoutError(f'fusion_node and the replay did not match on DDS within {timeout_s} s')
        first = pairs[0][0]
        t0 = time.perf_counter()
        for stamp, ir_msg, vis_msg in pairs:
            if realtime:
                time.sleep(max(0.0, (stamp - first) / 1e9 - (time.perf_counter() - t0)))
            arrived.clear()
            sent_at[stamp] = time.perf_counter()
            pub_ir.publish(ir_msg)
            pub_vis.publish(vis_msg)
            if not realtime and not arrived.wait(timeout_s):
                raise TimeoutError(f'no fused frame for stamp {stamp} within {timeout_s} s')
        if realtime:
            time.sleep(2.0)
        return ReplayResult(fused, {s: (ir, vis) for s, ir, vis in pairs}, latency, len(pairs),
                            node.stats.dropped, node.stats.rejected)
    finally:
        shut_down(node, peer, spinner, context)


def write_report(result: ReplayResult, bag: Path, out: Path) -> dict:
    """Score each fused frame against its sources and write report.json with quality and latency."""
    from fusion_ros.evaluation import metrics
    from fusion_ros.ros import codec
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for stamp, image in sorted(result.fused.items()):
        ir_msg, vis_msg = result.sources[stamp]
        ir = codec.to_mono(*codec.message_to_array(ir_msg))
        vis = codec.to_bgr(*codec.message_to_array(vis_msg))
        if ir.shape != vis.shape[:2] or ir.dtype != np.uint8:
            continue   # the metrics need 8-bit sources in one frame; the image is still counted below
        rows[stamp] = metrics.compute_all(metrics.as_gray(image), metrics.as_gray(ir), metrics.as_gray(vis))
    lat = np.array(list(result.latency_ms.values()) or [np.nan])
    report = {
        'bag': str(bag), 'pairs_sent': result.pairs_sent, 'fused': len(result.fused),
        'dropped': result.dropped, 'rejected': result.rejected,
        'latency_ms': {'p50': float(np.percentile(lat, 50)), 'p95': float(np.percentile(lat, 95))},
        'quality_mean': {m: float(np.mean([r[m] for r in rows.values()])) for m in metrics.METRIC_NAMES}
        if rows else {}, 'scored': len(rows),
    }
    (out / 'report.json').write_text(json.dumps(report, indent=2) + '\n')
    return report
