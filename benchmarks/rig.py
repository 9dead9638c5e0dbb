"""
An in-process fusion_node with a peer publisher/subscriber over real Fast DDS, shared by the benchmarks.

Localhost-only discovery and a random domain keep a benchmark from talking to other ROS graphs.
"""

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

from fusion_ros.ros import codec  # noqa: E402
from fusion_ros.ros.node import FusionNode  # noqa: E402


def rounded_ms(ms: float) -> float:
    """Two decimals, but three significant digits below 1 ms: a graph that takes microseconds must not read 0.0."""
    return round(ms, 2) if abs(ms) >= 1 else float(f'{ms:.3g}')


def percentiles(values) -> dict:
    """p50/p95/max in ms, rounded."""
    if not len(values):
        return {'n': 0}
    arr = np.asarray(values, np.float64)
    return {'n': int(arr.size), 'p50': rounded_ms(float(np.percentile(arr, 50))),
            'p95': rounded_ms(float(np.percentile(arr, 95))), 'max': rounded_ms(float(arr.max()))}


def cpu_model() -> str:
    """
    Name the CPU: its model name from /proc/cpuinfo, else what platform knows.

    Why: 'x86_64' named no CPU, and two runs of the same sweep on the same kind of 2-core VM two weeks
    apart differed by 3.1x (SeAFusion 640x480, 2 threads: 1005 vs 326 ms in benchmarks/results/cpu.json
    and cpu_2026-12-05.json); a result must say what it ran on.
    """
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Describe the machine a result was measured on, with the load it carried (the dev machine's CPU is shared)."""
    return {'cpu': cpu_model(), 'cores': os.cpu_count(),
            'load_average_1min': round(os.getloadavg()[0], 2)}


def save_results(results: dict, path: Path) -> None:
    """Write results as JSON (creating the folder) and print them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + '\n')
    print(json.dumps(results, indent=2))


class NodeRig:
    """fusion_node (configured and active) + a peer publishing IR/visible and recording fused latency."""

    def __init__(self, params: dict):
        rclpy.init()
        self.node = FusionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.peer = rclpy.create_node('bench_peer')
        self.executor = MultiThreadedExecutor(num_threads=3)
        for n in (self.node, self.peer):
            self.executor.add_node(n)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.node.trigger_configure()
        self.node.trigger_activate()
        self.received: list[tuple[float, float]] = []    # (monotonic receive time, latency ms)
        self.fused_sizes: list[tuple[int, int]] = []      # (width, height) of each fused frame
        self.peer.create_subscription(Image, 'fused/image', self._on_fused, 10)
        self.pub_ir = self.peer.create_publisher(Image, 'ir/image', qos_profile_sensor_data)
        self.pub_vis = self.peer.create_publisher(Image, 'visible/image', qos_profile_sensor_data)
        while not (self.pub_ir.get_subscription_count() and self.pub_vis.get_subscription_count()):
            time.sleep(0.05)

    def _on_fused(self, msg: Image) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.fused_sizes.append((msg.width, msg.height))
        self.received.append((time.monotonic(), (now - stamp) / 1e6))

    def publish_at(self, ir: np.ndarray, vis: np.ndarray, rate: float, duration: float) -> tuple[int, float]:
        """Publish stamped pairs at `rate` Hz for `duration` s; returns (pairs sent, start time)."""
        ir_msg, vis_msg = codec.array_to_image(ir, 'mono8'), codec.array_to_image(vis, 'bgr8')
        sent, period = 0, 1.0 / rate
        started = next_send = time.monotonic()
        while time.monotonic() - started < duration:
            now_ns = time.time_ns()
            for msg in (ir_msg, vis_msg):
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            self.pub_ir.publish(ir_msg)
            self.pub_vis.publish(vis_msg)
            sent += 1
            next_send += period
            time.sleep(max(0.0, next_send - time.monotonic()))
        return sent, started

    def close(self) -> None:
        """Stop the worker and tear the graph down."""
        self.node.stop_worker()
        self.executor.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()
        rclpy.shutdown()
