"""
Soak fusion_node in process over real Fast DDS, with faults, and record what it does per window.

    .venv/bin/python benchmarks/soak.py [--duration 1800] [--window 60] [--rate 10] [--threads 2]
        [--fault-every 30] [--out benchmarks/results/soak.json] [--plot benchmarks/results/soak.png]

IR + visible pairs (640x480, the bundled sample) are published at `--rate` Hz for `--duration`
seconds. Every `--fault-every` seconds one fault from issue 11 is injected, in turn: an IR frame
stamped an hour ahead (clock glitch), an unsupported encoding, a truncated frame, a duplicated pair
and a 2560x1440 pair (above max_input_pixels: fused downscaled); the feed then pauses until the
node has dealt with it, so that faults are processed rather than dropped in the mailbox (the pause
is recorded). Per window the JSON records the
process's RSS and OS thread count (node and feeder share the process), latency p50/p95 (visible
stamp -> fused frame received) and the pair accounting: pairs sent, frames the node received,
pairs formed, published, dropped in the mailbox, skipped, failed. At the end the script waits for
the frame in flight and checks pairs formed = published + dropped + skipped + failed. The PNG plots
RSS, threads, latency and the accounting over time.
"""

import argparse
import json
import os
from pathlib import Path
import platform
import sys
import time

REPO = Path(__file__).resolve().parent.parent
# large frames between the feeder and the node need the shipped 16 MB shared-memory segment
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config' / 'fastdds_large_data.xml'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from rig import NodeRig, percentiles  # noqa: E402
from fusion_ros.core.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402

PAIR = REPO / 'tests' / 'data' / 'pairs'
COUNTERS = ('pairs', 'published_count', 'dropped', 'skipped_pairs', 'inference_failures', 'rejected',
            'clock_jumps', 'downscaled', 'worker_restarts')


def proc_status() -> dict[str, float]:
    """RSS (MiB) and OS thread count of this process."""
    fields = dict(line.split(':', 1) for line in Path('/proc/self/status').read_text().splitlines() if ':' in line)
    return {'rss_mb': round(int(fields['VmRSS'].split()[0]) / 1024, 1), 'threads': int(fields['Threads'])}


class Soak:
    """The feeder side: paced pairs, faults in turn, and the per-window records."""

    def __init__(self, rig: NodeRig, ir: np.ndarray, vis: np.ndarray):
        self.rig = rig
        self.msgs = (codec.array_to_image(ir, 'mono8'), codec.array_to_image(vis, 'bgr8'))
        big_ir = cv2.resize(ir, (2560, 1440), interpolation=cv2.INTER_LINEAR)
        big_vis = cv2.resize(vis, (2560, 1440), interpolation=cv2.INTER_LINEAR)
        self.big = (codec.array_to_image(big_ir, 'mono8'), codec.array_to_image(big_vis, 'bgr8'))
        self.sent = {'pairs': 0, 'ir': 0, 'visible': 0}
        self.faults: dict[str, int] = {}
        self._fault_index = 0

    def _publish(self, ir_msg, vis_msg, stamp_ns: int) -> None:
        for msg in (ir_msg, vis_msg):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        self.rig.pub_ir.publish(ir_msg)
        self.rig.pub_vis.publish(vis_msg)
        self.sent['ir'] += 1
        self.sent['visible'] += 1

    def pair(self) -> None:
        """One good pair stamped now."""
        self._publish(*self.msgs, time.time_ns())
        self.sent['pairs'] += 1

    def fault(self) -> None:
        """Inject the next fault in turn."""
        kinds = ('future_stamp', 'bad_encoding', 'truncated', 'duplicate_pair', 'huge_pair')
        kind = kinds[self._fault_index % len(kinds)]
        self._fault_index += 1
        self.faults[kind] = self.faults.get(kind, 0) + 1
        now = time.time_ns()
        if kind == 'future_stamp':
            msg = codec.array_to_image(codec.image_to_array(self.msgs[0]), 'mono8')
            msg.header.stamp.sec = now // 1_000_000_000 + 3600
            self.rig.pub_ir.publish(msg)
            self.sent['ir'] += 1
        elif kind in ('bad_encoding', 'truncated'):
            msg = codec.array_to_image(codec.image_to_array(self.msgs[1]), 'bgr8')
            if kind == 'bad_encoding':
                msg.encoding = 'yuv422_' + 'x' * 200
            else:
                msg.data = msg.data[:1000]
            self._publish(self.msgs[0], msg, now)
        elif kind == 'duplicate_pair':
            self._publish(*self.msgs, now)
            self.sent['pairs'] += 1
            self._publish(*self.msgs, now)       # the same pair again: must give one output
        else:
            self._publish(*self.big, now)

    def settle(self, timeout_s: float = 60.0) -> float:
        """Pause the feed until the node has dealt with every pair formed (a fault is processed, not dropped)."""
        stats = self.rig.node.stats
        started = time.monotonic()
        while time.monotonic() - started < timeout_s and stats.pairs != (
                stats.published_count + stats.dropped + stats.skipped_pairs + stats.inference_failures):
            time.sleep(0.05)
        return time.monotonic() - started

    def record(self, t0: float, t1: float, started: float, previous: dict) -> dict:
        """Record the window [t0, t1) (monotonic): counters as totals and as this window's increase."""
        stats = self.rig.node.stats
        totals = {name: getattr(stats, name) for name in COUNTERS}
        totals['frames_received_ir'], totals['frames_received_visible'] = stats.frames_received
        totals.update({f'sent_{k}': v for k, v in self.sent.items()})
        latency = [lat for t, lat in list(self.rig.received) if t0 <= t < t1]
        return {'t_end_s': round(t1 - started, 1), 'seconds': round(t1 - t0, 2), **proc_status(),
                'latency_ms': percentiles(latency),
                'fused_received': len(latency), 'totals': totals,
                'in_window': {k: v - previous.get(k, 0) for k, v in totals.items()}}


def plot(records: list[dict], path: Path, title: str) -> None:
    """RSS, threads, latency and pair accounting per window, one panel each."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 9), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(4, 1, sharex=True)
    minutes = [r['t_end_s'] / 60 for r in records]
    axes[0].plot(minutes, [r['rss_mb'] for r in records], marker='.')
    axes[0].set_ylabel('RSS (MiB)')
    axes[1].plot(minutes, [r['threads'] for r in records], marker='.')
    axes[1].set_ylabel('OS threads')
    for key in ('p50', 'p95'):
        axes[2].plot(minutes, [r['latency_ms'].get(key, np.nan) for r in records], marker='.', label=key)
    axes[2].set_ylabel('latency (ms)')
    axes[2].legend(loc='best', fontsize='small')
    for key, label in (('sent_pairs', 'pairs sent'), ('pairs', 'pairs formed'), ('published_count', 'published'),
                       ('dropped', 'dropped (mailbox)'), ('skipped_pairs', 'skipped'),
                       ('inference_failures', 'failed')):
        axes[3].plot(minutes, [r['in_window'][key] / r['seconds'] for r in records], marker='.', label=label)
    axes[3].set_ylabel('per second')
    axes[3].set_xlabel('minutes')
    axes[3].legend(loc='best', fontsize='small', ncol=3)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    figure.suptitle(title, fontsize='medium')
    figure.tight_layout()
    figure.savefig(path, format='png')


def main() -> None:
    """Run the soak, print and save JSON and the plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=1800.0, help='seconds of load (default 30 min)')
    parser.add_argument('--window', type=float, default=60.0, help='seconds per record')
    parser.add_argument('--rate', type=float, default=10.0, help='pairs per second')
    parser.add_argument('--threads', type=int, default=2, help='ONNX Runtime threads')
    parser.add_argument('--fault-every', type=float, default=30.0, help='seconds between faults (0: none)')
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'seafusion.onnx')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'soak.json')
    parser.add_argument('--plot', type=Path, default=REPO / 'benchmarks' / 'results' / 'soak.png')
    args = parser.parse_args()
    ir, vis = read_ir(PAIR / 'ir' / '00091D.png'), read_visible(PAIR / 'vi' / '00091D.png')
    rig = NodeRig({'model_path': str(args.model), 'threads': args.threads})
    soak = Soak(rig, ir, vis)
    records: list[dict] = []
    load_before = os.getloadavg()
    paused = 0.0
    started = next_pair = next_fault = time.monotonic()
    next_fault += args.fault_every

    window_start = [started]

    def close_window() -> None:
        """Record the window from the previous record's end to now."""
        t1 = time.monotonic()
        records.append(soak.record(window_start[0], t1, started, records[-1]['totals'] if records else {}))
        window_start[0] = t1
        print(json.dumps({k: records[-1][k] for k in ('t_end_s', 'rss_mb', 'threads', 'latency_ms')}), flush=True)

    while time.monotonic() - started < args.duration:
        now = time.monotonic()
        if args.fault_every and now >= next_fault:
            soak.fault()
            paused += soak.settle()
            next_fault += args.fault_every
            next_pair = time.monotonic()
        soak.pair()
        if time.monotonic() - window_start[0] >= args.window:
            close_window()          # a window ends here; after a long pause for a fault it is longer
        next_pair += 1.0 / args.rate
        time.sleep(max(0.0, next_pair - time.monotonic()))
    soak.settle()                               # let the pair in flight finish before the books are closed
    time.sleep(1.0)
    close_window()
    final = records[-1]['totals']
    balanced = final['pairs'] == (final['published_count'] + final['dropped'] + final['skipped_pairs']
                                  + final['inference_failures'])
    rss = [r['rss_mb'] for r in records]
    results = {
        'command': 'benchmarks/soak.py ' + ' '.join(sys.argv[1:]),
        'machine': {'cpu': platform.processor() or platform.machine(), 'cores': os.cpu_count(),
                    'load_average_1min_before_after': [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
        'model': args.model.name, 'frame': [480, 640], 'rate_hz': args.rate, 'threads': args.threads,
        'duration_s': args.duration, 'window_s': args.window, 'faults_sent': soak.faults,
        'feed_paused_for_faults_s': round(paused, 1),
        'summary': {'rss_mb_first_last_max': [rss[0], rss[-1], max(rss)],
                    'threads_first_last_max': [records[0]['threads'], records[-1]['threads'],
                                               max(r['threads'] for r in records)],
                    'latency_ms_all': percentiles([lat for _, lat in rig.received]),
                    'fused_received': len(rig.received), 'totals': final,
                    'pairs_accounted': balanced, 'worker_alive': rig.node._worker.alive},
        'windows': records,
    }
    rig.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    plot(records, args.plot, f'fusion_node soak: {args.model.name}, 640x480 at {args.rate:g} Hz, '
                             f'{args.threads} threads, a fault every {args.fault_every:g} s')
    print(json.dumps(results['summary'], indent=2))


if __name__ == '__main__':
    main()
