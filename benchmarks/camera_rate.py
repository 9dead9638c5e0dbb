"""
Camera rate on a CPU: where one fused frame's time goes, per stage, size and transport, and the node's rate.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/camera_rate.py [--model models/realtime.onnx] [--threads 2] \
        [--duration 8] [--rate 30] [--sizes 640x480 1280x720 1920x1080] [--options-size 1920x1080] \
        [--out benchmarks/results/camera_rate.json]

1. Stages, in the order the node's inference thread runs them, on one thread each (the backend with
   `--threads`), median and p95 of `--repeats` frames: decode (Image view or JPEG/PNG decode, then
   to BGR / one IR plane), register (IR gain, registration, size limit: FusionPipeline.prepare),
   infer (the backend), encode (the output message: raw bgr8 Image, or JPEG CompressedImage), publish
   (rclpy publish with a subscriber matched over DDS). Inputs are a bundled MSRS pair resized to
   640x480, 1280x720 and 1920x1080: IR as 16-bit radiometric counts (mono16 / 16-bit PNG), visible
   as bgr8 / JPEG quality 90, the output as raw bgr8 / JPEG quality 90.
2. The node end to end: fusion_node in process over real DDS, pairs published at `--rate` Hz for
   `--duration` s, the fused output received by a peer: fused frames per second and latency
   (visible stamp -> fused frame received) p50/p95, raw and compressed.
3. Options at 1920x1080 (`--options-size`): decoding the JPEG at half size in libjpeg, IR and
   visible decoded on two threads at once, fewer backend threads, and fusing at a reduced internal
   size (2/3 and 1/2 of each side: inference plus the cost of restoring full size; their quality
   verdict is in benchmarks/results/internal_resolution.json, from benchmarks/internal_resolution.py).

Writes JSON, a Markdown table and a stacked-bar plot beside it. Take timings with the training paused
(COMMON rule of this project): other engineers' tests may still share the 2 cores, and the JSON says so.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import sys
import threading
import time

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rig import machine, percentiles, REPO, rounded_ms, save_results  # noqa: E402  (sets the DDS domain first)
import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from internal_resolution import OPTIONS as RESTORE_OPTIONS, shrink  # noqa: E402
from fusion_ros.core.compressed import transport_topic  # noqa: E402
from fusion_ros.core.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.core.pipeline import FusionPipeline  # noqa: E402
from fusion_ros.ros import codec  # noqa: E402
from fusion_ros.ros.in_process import matched_both_ways, shut_down, SpinThread, wait_until  # noqa: E402
from fusion_ros.ros.node import FusionNode  # noqa: E402

PAIR = REPO / 'tests' / 'data' / 'pairs'
SIZES = ('640x480', '1280x720', '1920x1080')
TRANSPORTS = ('raw', 'compressed')
STAGES = ('decode', 'register', 'infer', 'encode', 'publish')
QUALITY = 90


def timed(function, repeats: int) -> list[float]:
    """Run function once to warm up, then repeats times; return the milliseconds of each run."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def camera_messages(size: tuple[int, int], transport: str, sec: int = 0) -> tuple:
    """Return (IR, visible) messages of the bundled pair at size: mono16 counts and bgr8, raw or compressed."""
    ir = cv2.resize(read_ir(PAIR / 'ir' / '00091D.png'), size, interpolation=cv2.INTER_CUBIC)
    vis = cv2.resize(read_visible(PAIR / 'vi' / '00091D.png'), size, interpolation=cv2.INTER_CUBIC)
    counts = ir.astype(np.uint16) * 40 + 27315            # a plausible 0.01 K/count scene: 0 .. 102 degC
    if transport == 'raw':
        messages = codec.array_to_image(counts, 'mono16'), codec.array_to_image(vis, 'bgr8')
    else:
        from fusion_ros.core import compressed
        messages = []
        for array, encoding, kind in ((counts, 'mono16', 'png'), (vis, 'bgr8', 'jpeg')):
            text, payload = compressed.encode(array, encoding, kind, quality=QUALITY)
            messages.append(CompressedImage(format=text, data=payload.tobytes()))
    for msg in messages:
        msg.header.stamp.sec = sec
    return tuple(messages)


def decode_pair(ir_msg, vis_msg) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair as the node's inference thread does."""
    return codec.to_mono(*codec.message_to_array(ir_msg)), codec.to_bgr(*codec.message_to_array(vis_msg))


class Publishing:
    """A publisher per output type with a subscriber matched over DDS, spun in a thread (the publish stage)."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('camera_rate_publish', context=self.context)
        self.pubs = {Image: self.node.create_publisher(Image, 'stage/image', 5),
                     CompressedImage: self.node.create_publisher(CompressedImage, 'stage/compressed', 5)}
        self.subs = [self.node.create_subscription(t, p.topic_name, lambda m: None, 5) for t, p in self.pubs.items()]
        self.executor = MultiThreadedExecutor(num_threads=1, context=self.context)
        self.executor.add_node(self.node)
        self.spinner = SpinThread(self.executor).start()
        wait_until(lambda: all(p.get_subscription_count() for p in self.pubs.values()), 20)

    def close(self) -> None:
        """Tear the graph down."""
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def parse_size(label: str) -> tuple[int, int]:
    """Return (width, height) of a 'WxH' label."""
    width, height = (int(v) for v in label.split('x'))
    return width, height


def stage_costs(pipeline: FusionPipeline, publishing: Publishing, repeats: int, sizes: list[str]) -> dict:
    """Time every stage for every size and transport; return {size: {transport: {stage: percentiles}}}."""
    results: dict = {}
    for label, size in ((label, parse_size(label)) for label in sizes):
        results[label] = {}
        for transport in TRANSPORTS:
            ir_msg, vis_msg = camera_messages(size, transport)
            ir, vis = decode_pair(ir_msg, vis_msg)
            ir8, vis_bgr = pipeline.prepare(ir, vis)
            fused = pipeline.fuse(ir, vis).fused_bgr
            if transport == 'raw':
                def encode():
                    return codec.array_to_image(fused, 'bgr8')
            else:
                def encode():
                    return codec.array_to_compressed(fused, 'bgr8', QUALITY)
            message = encode()
            pub = publishing.pubs[type(message)]
            costs = {
                'decode': timed(lambda: decode_pair(ir_msg, vis_msg), repeats),
                'register': timed(lambda: pipeline.prepare(ir, vis), repeats),
                'infer': timed(lambda: pipeline.backend.run({'ir': ir8, 'visible_bgr': vis_bgr}), repeats),
                'encode': timed(encode, repeats),
                'publish': timed(lambda: pub.publish(message), repeats),
            }
            results[label][transport] = {stage: percentiles(costs[stage]) for stage in STAGES}
            total = sum(results[label][transport][s]['p50'] for s in STAGES)
            results[label][transport]['sum_p50_ms'] = rounded_ms(total)
            results[label][transport]['input_bytes'] = len(ir_msg.data) + len(vis_msg.data)
            results[label][transport]['output_bytes'] = len(message.data)
            print(f'{label} {transport}: ' + ', '.join(f'{s} {results[label][transport][s]["p50"]}' for s in STAGES)
                  + f' ms (sum {total:.1f})', flush=True)
    return results


def node_rate(model: Path, threads: int, size: tuple[int, int], transport: str, rate: float,
              duration: float) -> dict:
    """Run fusion_node with the transport in and out; publish pairs at rate for duration; return fps and latency."""
    context = rclpy.Context()
    rclpy.init(context=context)
    compressed = transport == 'compressed'
    node = FusionNode(context=context, parameter_overrides=[
        Parameter('model_path', value=str(model)), Parameter('threads', value=threads),
        Parameter('ir.transport', value=transport), Parameter('visible.transport', value=transport),
        Parameter('output.compressed', value=compressed), Parameter('output.jpeg_quality', value=QUALITY)])
    peer = rclpy.create_node('camera_rate_peer', context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    for each in (node, peer):
        executor.add_node(each)
    spinner = SpinThread(executor).start()
    received: list[tuple[float, float]] = []
    lock = threading.Lock()

    def on_fused(msg) -> None:
        now = time.time_ns()
        with lock:
            received.append((time.monotonic(), (now - msg.header.stamp.sec * 10**9 - msg.header.stamp.nanosec) / 1e6))
    try:
        node.trigger_configure()
        node.trigger_activate()
        out_type = CompressedImage if compressed else Image
        sub = peer.create_subscription(out_type, transport_topic('fused/image', transport), on_fused, 10)
        in_type = CompressedImage if compressed else Image
        pubs = [peer.create_publisher(in_type, transport_topic(f'{name}/image', transport), qos_profile_sensor_data)
                for name in ('ir', 'visible')]
        if not wait_until(lambda: matched_both_ways(node, pubs, [sub]), 30):
            raise TimeoutError('fusion_node and the benchmark peer did not match on DDS')
        messages = camera_messages(size, transport)
        sent, period = 0, 1.0 / rate
        started = next_send = time.monotonic()
        while time.monotonic() - started < duration:
            now_ns = time.time_ns()
            for pub, msg in zip(pubs, messages):
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
                pub.publish(msg)
            sent += 1
            next_send += period
            time.sleep(max(0.0, next_send - time.monotonic()))
        time.sleep(1.0)
        with lock:
            window = [lat for t, lat in received if started + 1.0 <= t <= started + duration]  # 1 s warm-up left out
        return {'pairs_sent': sent, 'fused': len(received), 'fused_fps': round(len(window) / (duration - 1.0), 1),
                'latency_ms': percentiles(window), 'dropped_in_mailbox': node.stats.dropped}
    finally:
        shut_down(node, peer, spinner, context)


def options_at(model: Path, threads: int, repeats: int, label: str) -> dict:
    """Measure the options at one size: reduced JPEG decode, parallel decode, backend threads, internal size."""
    from fusion_ros.core import compressed
    size = parse_size(label)
    ir_msg, vis_msg = camera_messages(size, 'compressed')
    ir, vis = decode_pair(ir_msg, vis_msg)
    options: dict = {
        'decode visible JPEG, full size': percentiles(timed(lambda: compressed.decode(vis_msg.format, vis_msg.data),
                                                            repeats)),
        'decode visible JPEG, half size (IMREAD_REDUCED_COLOR_2)': percentiles(timed(
            lambda: compressed.decode(vis_msg.format, vis_msg.data, reduction=2), repeats)),
        'decode IR 16-bit PNG': percentiles(timed(lambda: compressed.decode(ir_msg.format, ir_msg.data), repeats)),
    }
    with ThreadPoolExecutor(2) as pool:
        options['decode pair, sequential'] = percentiles(timed(lambda: decode_pair(ir_msg, vis_msg), repeats))
        options['decode pair, IR and visible on 2 threads'] = percentiles(timed(lambda: [f.result() for f in (
            pool.submit(lambda: codec.to_mono(*codec.message_to_array(ir_msg))),
            pool.submit(lambda: codec.to_bgr(*codec.message_to_array(vis_msg))))], repeats))
    for count in sorted({1, threads}):
        pipeline = FusionPipeline.from_model(model, threads=count)
        ir8, vis_bgr = pipeline.prepare(ir, vis)
        options[f'infer {label}, {count} backend thread(s)'] = percentiles(timed(
            lambda: pipeline.backend.run({'ir': ir8, 'visible_bgr': vis_bgr}), repeats))
        if count != threads:
            pipeline.close()
    for width, height in ((size[0] * 2 // 3, size[1] * 2 // 3), (size[0] // 2, size[1] // 2)):
        ir_small, vis_small = shrink(ir8, (width, height)), shrink(vis_bgr, (width, height))
        options[f'infer at {width}x{height} internal ({threads} threads), shrink included'] = percentiles(timed(
            lambda: pipeline.backend.run({'ir': shrink(ir8, (width, height)),
                                          'visible_bgr': shrink(vis_bgr, (width, height))}), repeats))
        fused_small = pipeline.backend.run({'ir': ir_small, 'visible_bgr': vis_small})['fused_bgr']
        for name, restore in RESTORE_OPTIONS.items():
            options[f'restore {label} from {width}x{height}: {name}'] = percentiles(timed(
                lambda: restore(fused_small, vis_bgr, vis_small, ir8, ir_small), repeats))
    pipeline.close()
    return options


def table(stages: dict, rates: dict) -> str:
    """Return the per-stage p50 table with the node's rate and latency, in Markdown."""
    lines = ['| size | transport | ' + ' | '.join(f'{s} ms' for s in STAGES) + ' | sum ms | node fps | '
             'latency p50 / p95 ms | in / out bytes |', '|---|---|' + '---:|' * (len(STAGES) + 4)]
    for label in stages:
        for transport in TRANSPORTS:
            row, rate = stages[label][transport], rates[label][transport]
            lines.append(f'| {label} | {transport} | ' + ' | '.join(str(row[s]['p50']) for s in STAGES)
                         + f' | {row["sum_p50_ms"]} | {rate["fused_fps"]} | {rate["latency_ms"].get("p50")} / '
                         f'{rate["latency_ms"].get("p95")} | {row["input_bytes"]} / {row["output_bytes"]} |')
    return '\n'.join(lines) + '\n'


def plot(stages: dict, rates: dict, path: Path) -> None:
    """Stacked bars of the stage medians per size and transport, with the node's fused fps written above."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [f'{size}\n{transport}' for size in stages for transport in TRANSPORTS]
    bottoms = np.zeros(len(labels))
    for stage in STAGES:
        values = np.array([stages[size][transport][stage]['p50'] for size in stages for transport in TRANSPORTS])
        axes.bar(labels, values, bottom=bottoms, label=stage)
        bottoms += values
    for x, (size, transport) in enumerate((s, t) for s in stages for t in TRANSPORTS):
        axes.text(x, bottoms[x] + 1, f'{rates[size][transport]["fused_fps"]} fps', ha='center', fontsize=8)
    axes.axhline(1000 / 30, color='k', linestyle='--', linewidth=0.8, label='33.3 ms (30 fps, one frame at a time)')
    axes.set_ylabel('ms per fused frame (p50 per stage)')
    axes.set_title('fusion_node per-stage cost on this CPU, real-time model')
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    """Run the three measurements, print them and save JSON, Markdown and PNG."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'realtime.onnx')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--duration', type=float, default=8.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), help='frame sizes WxH')
    parser.add_argument('--options-size', default='1920x1080', help='the size the options are measured at')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'camera_rate.json')
    args = parser.parse_args()
    cv2.setNumThreads(1)          # one thread per OpenCV call, as in the node's inference thread
    started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    pipeline = FusionPipeline.from_model(args.model, threads=args.threads)
    publishing = Publishing()
    try:
        stages = stage_costs(pipeline, publishing, args.repeats, args.sizes)
    finally:
        publishing.close()
        pipeline.close()
    rates = {label: {t: node_rate(args.model, args.threads, parse_size(label), t, args.rate, args.duration)
                     for t in TRANSPORTS} for label in args.sizes}
    for label in args.sizes:
        print(label, {t: (rates[label][t]['fused_fps'], rates[label][t]['latency_ms']) for t in TRANSPORTS},
              flush=True)
    options = options_at(args.model, args.threads, args.repeats, args.options_size)
    results = {'model': str(args.model.relative_to(REPO)), 'backend': 'onnxruntime', 'threads': args.threads,
               'started_utc': started, 'machine': machine(),
               'note': 'training paused during the run; other engineers\' tests may have shared the 2 cores',
               'jpeg_quality': QUALITY, 'input_rate_hz': args.rate, 'stages': stages, 'node': rates,
               f'options_{args.options_size}': options}
    save_results(results, args.out)
    args.out.with_suffix('.md').write_text(table(stages, rates))
    plot(stages, rates, args.out.with_suffix('.png'))
    print(table(stages, rates))


if __name__ == '__main__':
    main()
