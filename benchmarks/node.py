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
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rig import machine, NodeRig, percentiles, REPO, save_results  # noqa: E402
from fusion_ros.core.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402

PAIR = REPO / 'tests' / 'data' / 'pairs'


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
    rig = NodeRig({'model_path': str(args.model), 'threads': args.threads})
    node = rig.node
    vis_msg = codec.array_to_image(vis, 'bgr8')

    callback_ms = []
    for k in range(50):          # callback cost: store + pair, measured directly on the node
        vis_msg.header.stamp.sec, vis_msg.header.stamp.nanosec = 0, k * 1_000_000
        started = time.perf_counter()
        node._on_image(1, vis_msg)
        callback_ms.append((time.perf_counter() - started) * 1000)
    node.stats.frames_received = [0, 0]

    sent, started = rig.publish_at(ir, vis, args.rate, args.duration)
    time.sleep(2.0)
    windows = []
    for w in range(int(np.ceil(args.duration / 10))):
        lat = [lat for t, lat in rig.received if started + 10 * w <= t < started + 10 * (w + 1)]
        windows.append({'window_s': [10 * w, 10 * (w + 1)], **percentiles(lat)})
    overhead = list(node.stats.overhead_ms)
    results = {
        'machine': machine(),
        'model': args.model.name, 'frame': [480, 640], 'threads': args.threads,
        'overhead_ms_beyond_inference': percentiles(overhead),
        'subscription_callback_ms': percentiles(callback_ms),
        'load': {'rate_hz': args.rate, 'duration_s': args.duration, 'pairs_sent': sent,
                 'frames_received_ir_visible': node.stats.frames_received,
                 'pairs_formed': node.stats.pairs, 'fused_received': len(rig.received),
                 'dropped_in_mailbox': node.stats.dropped, 'rejected': node.stats.rejected,
                 'latency_ms_all': percentiles([lat for _, lat in rig.received]),
                 'latency_ms_per_10s_window': windows},
    }
    rig.close()
    save_results(results, args.out)


if __name__ == '__main__':
    main()
