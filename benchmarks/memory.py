"""
fusion_node memory after large frames, in process over real Fast DDS (issue 11, F3).

    .venv/bin/python benchmarks/memory.py [--threads 2] [--large 1280 960] [--out benchmarks/results/memory.json]

One pair at a time, each waited for: three 640x480 pairs (the steady camera), one `--large` pair
with max_input_pixels above it (inference really runs at that size), two 640x480 pairs again;
then max_input_pixels is set to 640x480 and a 2560x1440 pair is sent (fused downscaled). After
each step the process's RSS is read once it has settled, and the peak RSS during the step
(VmHWM, reset before the step through /proc/self/clear_refs). Node and feeder share the process.
"""

import argparse
import os
from pathlib import Path
import sys
import time

REPO = Path(__file__).resolve().parent.parent
# large frames between the feeder and the node need the shipped 16 MB shared-memory segment
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config' / 'fastdds_large_data.xml'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from rig import machine, NodeRig, save_results  # noqa: E402
from fusion_ros.core.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402

PAIR = REPO / 'tests' / 'data' / 'pairs'


def memory_mb() -> dict[str, float]:
    """Return VmRSS and VmHWM of this process, MiB."""
    fields = dict(line.split(':', 1) for line in Path('/proc/self/status').read_text().splitlines() if ':' in line)
    return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ('VmRSS', 'VmHWM')}


def reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux: write 5 to clear_refs)."""
    Path('/proc/self/clear_refs').write_text('5')


def main() -> None:
    """Run the steps, print and save JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--large', type=int, nargs=2, default=(1280, 960), metavar=('W', 'H'))
    parser.add_argument('--settle', type=float, default=3.0, help='seconds to wait before reading RSS')
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'seafusion.onnx')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'memory.json')
    args = parser.parse_args()
    ir, vis = read_ir(PAIR / 'ir' / '00091D.png'), read_visible(PAIR / 'vi' / '00091D.png')
    large_w, large_h = args.large
    rig = NodeRig({'model_path': str(args.model), 'threads': args.threads,
                   'max_input_pixels': max(large_w * large_h, 640 * 480)})

    def fuse(width: int, height: int) -> dict:
        """Send one pair of that size, wait for its fused frame, return the step's record."""
        count = len(rig.received)
        pair = [cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR) for a in (ir, vis)]
        msgs = [codec.array_to_image(a, enc) for a, enc in zip(pair, ('mono8', 'bgr8'))]
        reset_peak()
        started = time.monotonic()
        for msg, pub in zip(msgs, (rig.pub_ir, rig.pub_vis)):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
            pub.publish(msg)
        while len(rig.received) == count and time.monotonic() - started < 600:
            time.sleep(0.05)
        seconds = time.monotonic() - started
        peak = memory_mb()['VmHWM']
        time.sleep(args.settle)
        return {'input': [width, height], 'fused': list(rig.fused_sizes[-1]) if rig.fused_sizes else None,
                'seconds': round(seconds, 1), 'peak_rss_mb': peak, 'rss_after_mb': memory_mb()['VmRSS']}

    start = memory_mb()['VmRSS']
    steps = [fuse(640, 480) for _ in range(3)]
    steps.append(fuse(large_w, large_h))
    steps += [fuse(640, 480) for _ in range(2)]
    rig.node.set_parameters([Parameter('max_input_pixels', value=640 * 480)])
    steps.append(fuse(2560, 1440))
    steps.append(fuse(640, 480))
    results = {
        'command': 'benchmarks/memory.py ' + ' '.join(sys.argv[1:]),
        'machine': machine(),
        'model': args.model.name, 'threads': args.threads, 'rss_after_start_mb': start,
        'steps': steps,
        'rss_steady_before_large_mb': steps[2]['rss_after_mb'],
        'rss_after_large_mb': steps[3]['rss_after_mb'],
        'rss_steady_after_large_mb': steps[5]['rss_after_mb'],
        'downscaled_fused_size': steps[6]['fused'],
    }
    rig.close()
    save_results(results, args.out)


if __name__ == '__main__':
    main()
