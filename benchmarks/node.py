"""
fusion_node overhead and latency, in process over real Fast DDS (localhost only).

    .venv/bin/python benchmarks/node.py [--duration 60] [--rate 30] [--threads 2] [--out benchmarks/results/node.json]

1. Overhead: what the node adds beyond inference per 640x480 frame (decode the two
   Image messages, encode and publish the fused one), from the node's own stage timing,
   plus the time of one subscription callback (store and pair).
2. Latency under load: IR and visible pairs published at `rate` Hz for `duration` s,
   faster than CPU inference can follow. Latency (visible stamp -> fused frame received) is
   reported per 10 s window: it must stay flat, the excess shows up as counted drops.
"""

import argparse
import json
import os
from pathlib import Path
import platform
import random
import sys
import threading
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusion_ros import codec  # noqa: E402
from fusion_ros.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.node import FusionNode  # noqa: E402

PAIR = REPO / 'tests' / 'data' / 'pairs'


def percentiles(values) -> dict:
    """p50/p95/max in ms, rounded."""
    if not len(values):
        return {'n': 0}
    arr = np.asarray(values, np.float64)
    return {'n': int(arr.size), 'p50': round(float(np.percentile(arr, 50)), 2),
            'p95': round(float(np.percentile(arr, 95)), 2), 'max': round(float(arr.max()), 2)}


def main() -> None:
    """Run both measurements and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=60.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'seafusion.onnx')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'node.json')
    args = parser.parse_args()
    ir = read_ir(PAIR / 'ir' / '00091D.png')
    vis = read_visible(PAIR / 'vi' / '00091D.png')
    rclpy.init()
    node = FusionNode(parameter_overrides=[Parameter('model_path', value=str(args.model)),
                                           Parameter('threads', value=args.threads)])
    peer = rclpy.create_node('bench_peer')
    executor = MultiThreadedExecutor(num_threads=3)
    for n in (node, peer):
        executor.add_node(n)
    threading.Thread(target=executor.spin, daemon=True).start()
    node.trigger_configure()
    node.trigger_activate()
    received: list[tuple[float, float]] = []    # (receive time, latency ms)

    def on_fused(msg: Image) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        received.append((time.monotonic(), (now - stamp) / 1e6))
    peer.create_subscription(Image, 'fused/image', on_fused, 10)
    pub_ir = peer.create_publisher(Image, 'ir/image', qos_profile_sensor_data)
    pub_vis = peer.create_publisher(Image, 'visible/image', qos_profile_sensor_data)
    while not (pub_ir.get_subscription_count() and pub_vis.get_subscription_count()):
        time.sleep(0.05)
    ir_msg, vis_msg = codec.array_to_image(ir, 'mono8'), codec.array_to_image(vis, 'bgr8')

    callback_ms = []
    for k in range(50):          # callback cost: store + pair, measured directly on the node
        vis_msg.header.stamp.sec, vis_msg.header.stamp.nanosec = 0, k * 1_000_000
        started = time.perf_counter()
        node._on_image(1, vis_msg)
        callback_ms.append((time.perf_counter() - started) * 1000)
    node.stats.frames_received = [0, 0]

    sent = 0
    period = 1.0 / args.rate
    started = time.monotonic()
    next_send = started
    while time.monotonic() - started < args.duration:
        now_ns = time.time_ns()
        for msg in (ir_msg, vis_msg):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
        pub_ir.publish(ir_msg)
        pub_vis.publish(vis_msg)
        sent += 1
        next_send += period
        time.sleep(max(0.0, next_send - time.monotonic()))
    time.sleep(2.0)
    windows = []
    for w in range(int(np.ceil(args.duration / 10))):
        lat = [lat for t, lat in received if started + 10 * w <= t < started + 10 * (w + 1)]
        windows.append({'window_s': [10 * w, 10 * (w + 1)], **percentiles(lat)})
    overhead = list(node.stats.overhead_ms)
    results = {
        'machine': {'cpu': platform.processor() or platform.machine(), 'cores': os.cpu_count()},
        'model': args.model.name, 'frame': [480, 640], 'threads': args.threads,
        'overhead_ms_beyond_inference': percentiles(overhead),
        'subscription_callback_ms': percentiles(callback_ms),
        'load': {'rate_hz': args.rate, 'duration_s': args.duration, 'pairs_sent': sent,
                 'frames_received_ir_visible': node.stats.frames_received,
                 'pairs_formed': node.stats.pairs, 'fused_received': len(received),
                 'dropped_in_mailbox': node.stats.dropped, 'rejected': node.stats.rejected,
                 'latency_ms_all': percentiles([lat for _, lat in received]),
                 'latency_ms_per_10s_window': windows},
    }
    node.stop_worker()
    executor.shutdown()
    node.destroy_node()
    peer.destroy_node()
    rclpy.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
