"""
Model-only and full-node throughput and latency of every backend present, at 640x480 and 1280x720.

    .venv/bin/python benchmarks/gpu.py [--model models/seafusion.onnx] [--backends onnxruntime torch tensorrt]
        [--precision fp16] [--runs 200] [--duration 10] [--rate 250] [--out benchmarks/results/gpu.json]

* model-only: ``backend.run`` on the uint8 end-to-end graph with one real sample pair resized
  to each size; frames/s = 1000 / mean ms, latency p50/p95 over `runs` calls after a warm-up.
* node: publisher -> fusion_node -> subscriber in one process over real Fast DDS; pairs are
  published at `rate` Hz for `duration` s; fused frames/s received and latency (visible stamp ->
  fused frame received) p50/p95, plus the pairs the one-slot mailbox dropped.

A backend that cannot start here (no TensorRT, no CUDA) is recorded with the reason, not
skipped silently. Targets (issue, H100-class GPU, SeAFusion 640x480): model-only >= 1000
frames/s; node >= 200 frames/s with p95 latency < 10 ms. Prints and saves JSON with the machine.
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rig import cpu_model, NodeRig, percentiles, REPO  # noqa: E402
from fusion_ros.backends import BackendOptions  # noqa: E402
from fusion_ros.core.imageio import read_ir, read_visible  # noqa: E402
from fusion_ros.core.pipeline import FusionPipeline  # noqa: E402
from fusion_ros.tensorrt.engine_cache import DEFAULT_PROFILE, Profile  # noqa: E402
from fusion_ros.tensorrt.plan_store import engine_dir  # noqa: E402

SIZES = {'640x480': (480, 640), '1280x720': (720, 1280)}


def machine() -> dict:
    """CPU, cores and, when torch sees one, the GPU."""
    info = {'cpu': cpu_model(), 'cores': os.cpu_count()}
    try:
        import torch
        if torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name(0)
            info['cuda'] = torch.version.cuda
        info['torch'] = torch.__version__
    except ImportError:
        pass
    return info


def sample(hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the 00091D MSRS pair resized to (H, W)."""
    folder = REPO / 'tests' / 'data' / 'pairs'
    ir, vis = read_ir(folder / 'ir' / '00091D.png'), read_visible(folder / 'vi' / '00091D.png')
    size = (hw[1], hw[0])
    return cv2.resize(ir, size, interpolation=cv2.INTER_AREA), cv2.resize(vis, size, interpolation=cv2.INTER_AREA)


def model_only(pipeline: FusionPipeline, ir: np.ndarray, vis: np.ndarray, runs: int, warmup: int) -> dict:
    """Time backend.run alone (the inputs are prepared once, as the node's pre-processing is not the model)."""
    ir8, vis_bgr = pipeline.prepare(ir, vis)
    feeds = {'ir': np.ascontiguousarray(ir8), 'visible_bgr': np.ascontiguousarray(vis_bgr)}
    for _ in range(warmup):
        pipeline.backend.run(feeds)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        pipeline.backend.run(feeds)
        times.append((time.perf_counter() - started) * 1000)
    return {'frames_per_s': round(1000 / statistics.mean(times), 1), 'latency_ms': percentiles(times)}


def node_run(params: dict, ir: np.ndarray, vis: np.ndarray, rate: float, duration: float) -> dict:
    """Open-loop publish at `rate` Hz through an in-process node; fused rate, latency and drops."""
    rig = NodeRig(params)
    try:
        for _ in range(5):                      # warm-up frames (CUDA graph capture, allocator)
            rig.publish_at(ir, vis, 5.0, 0.2)
        time.sleep(1.0)
        rig.received.clear()
        sent, started = rig.publish_at(ir, vis, rate, duration)
        time.sleep(1.0)
        fused = [lat for t, lat in rig.received if t >= started]
        stats = rig.node.stats
        return {'rate_hz': rate, 'duration_s': duration, 'pairs_sent': sent, 'fused_received': len(fused),
                'fused_per_s': round(len(fused) / duration, 1), 'latency_ms': percentiles(fused),
                'dropped_in_mailbox': stats.dropped, 'overhead_ms_beyond_inference': percentiles(stats.overhead_ms)}
    finally:
        rig.close()


def measure(model: Path, backend: str, label: str, args: argparse.Namespace) -> dict:
    """
    Model-only (and unless args.no_node, node) numbers of one backend at one size; the reason if it cannot start.

    TensorRT gets one profile tuned for the size and one plan per size in the engine cache
    directory, shared by the model-only and node runs (built once).
    """
    ir, vis = sample(SIZES[label])
    profile = Profile(DEFAULT_PROFILE.min_hw, SIZES[label], DEFAULT_PROFILE.max_hw)
    plan = engine_dir() / f'benchmark-{model.stem}-{args.precision}-{label}.engine'
    options = BackendOptions(threads=args.threads, precision=args.precision, engine_profile=profile, engine_path=plan)
    try:
        pipeline = FusionPipeline.from_model(model, backend=backend, options=options)
    except (ImportError, ValueError, RuntimeError, FileNotFoundError) as err:
        print(f'{backend} {label}: unavailable: {err}', flush=True)
        return {'unavailable': str(err)}
    entry = {'describe': pipeline.backend.describe(),
             'model_only': model_only(pipeline, ir, vis, args.runs, args.warmup)}
    pipeline.close()
    if not args.no_node:
        params = {'model_path': str(model), 'backend': backend, 'threads': args.threads,
                  'precision': args.precision, 'engine.profile_opt': list(SIZES[label]),
                  'engine.path': str(plan), 'pairing.mode': 'latest'}
        entry['node'] = node_run(params, ir, vis, args.rate, args.duration)
    print(f'{backend} {label}: ' + json.dumps(entry), flush=True)
    return entry


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with benchmarks/first_run.py: sizes, precision, threads, runs, node load."""
    parser.add_argument('--sizes', nargs='+', choices=list(SIZES), default=list(SIZES))
    parser.add_argument('--precision', choices=('fp16', 'fp32'), default='fp16')
    parser.add_argument('--threads', type=int, default=0, help='CPU threads of CPU backends (0 = default)')
    parser.add_argument('--runs', type=int, default=200)
    parser.add_argument('--warmup', type=int, default=10, help='untimed calls first (CUDA graph capture, autotuning)')
    parser.add_argument('--duration', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=250.0)
    parser.add_argument('--no-node', action='store_true', help='model-only numbers')


def main() -> None:
    """Measure every requested backend at every size; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'seafusion.onnx')
    parser.add_argument('--backends', nargs='+', default=['onnxruntime', 'torch', 'tensorrt'])
    add_timing_arguments(parser)
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'gpu.json')
    args = parser.parse_args()
    results = {'machine': machine(), 'model': args.model.name, 'precision': args.precision,
               'command': 'benchmarks/gpu.py ' + ' '.join(sys.argv[1:]),
               'backends': {backend: {label: measure(args.model, backend, label, args) for label in args.sizes}
                            for backend in args.backends}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
