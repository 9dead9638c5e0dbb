"""
The first run on a GPU machine in one command: engines, accuracy against ONNX Runtime, speed; JSON and markdown.

    .venv/bin/python benchmarks/first_run.py [--models models] [--precision fp16] [--pairs tests/data/pairs]
        [--runs 200] [--duration 10] [--rate 250] [--out benchmarks/results/first_gpu_run]

1. builds (or reuses) the TensorRT engine of every shipped node model with the node's builder and
   cache directory (training.deploy.build_engines): a model that fails is reported and the others go on;
2. fuses the bundled pairs with each engine and with ONNX Runtime on the model's fp32 graph: max and
   mean grey-level difference, share of pixels off by more than one level, metric change, mask
   agreement (training.deploy.fp16.compare_pipelines, the check the exporter runs for fp16 on the CPU);
3. measures each model on TensorRT, model-only and through the node, at 640x480 and 1280x720
   (benchmarks/gpu.py, one plan per size tuned for it);
4. writes <out>.json and <out>.md with the machine, TensorRT and driver versions.

Without TensorRT or a driver it stops at step 1 with the install hint, after writing what it found.
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu import add_timing_arguments, machine, measure  # noqa: E402
from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from fusion_ros.backends.tensorrt_backend import TensorRTBackend  # noqa: E402
from fusion_ros.core.imageio import pair_folders, read_ir, read_visible  # noqa: E402
from fusion_ros.core.model_card import load_card  # noqa: E402
from fusion_ros.core.pipeline import FusionPipeline  # noqa: E402
from fusion_ros.tensorrt.builder import BuildSettings, import_tensorrt  # noqa: E402
from fusion_ros.tensorrt.cuda_memory import CudaRuntime  # noqa: E402
from fusion_ros.tensorrt.plan_store import engine_dir  # noqa: E402
from training.deploy.build_engines import build_one, shipped_models  # noqa: E402
from training.deploy.fp16 import compare_pipelines  # noqa: E402


def environment() -> dict[str, Any]:
    """Machine, TensorRT version and GPU; raises ImportError / RuntimeError with the install hint when missing."""
    info = machine()
    info['tensorrt'] = import_tensorrt().__version__
    info['gpu'], info['compute_capability'] = CudaRuntime().device_identity()
    return info


def accuracy(model: Path, plan: Path, samples) -> dict:
    """Compare the TensorRT engine with ONNX Runtime on the fp32 graph, over the bundled pairs."""
    card = load_card(model)
    reference = FusionPipeline(card, OnnxRuntimeBackend(model, card))
    engine = FusionPipeline(card, TensorRTBackend(plan, card))
    try:
        return compare_pipelines(reference, engine, samples)
    finally:
        engine.close()


def markdown(report: dict) -> str:
    """Render the human-readable report: environment, engines, accuracy and speed tables."""
    env = report['environment']
    lines = ['# First GPU run', '', f"`{report['command']}`", '',
             ', '.join(f'{k}: {v}' for k, v in env.items()), '', '## Engines', '',
             '| model | precision | action | build s | MB | graph |', '|---|---|---|---:|---:|---|']
    for row in report['engines']:
        lines.append(f"| {row['model']} | {row['precision']} | {row['action']} | {row.get('build_seconds', '')} | "
                     f"{row.get('megabytes', '')} | {row.get('graph', row.get('error', ''))} |")
    lines += ['', '## TensorRT vs ONNX Runtime (fp32 graph), bundled pairs', '',
              '| model | max / mean abs diff (levels) | > 1 level | Qabf change | VIF change | mask |',
              '|---|---:|---:|---:|---:|---|']
    for model, acc in report['accuracy'].items():
        mask = acc.get('class_map_equal_share', acc.get('saliency_max_abs_levels', '-'))
        lines.append(f"| {model} | {acc['max_abs_levels']} / {acc['mean_abs_levels']} | "
                     f"{acc['share_off_by_more_than_1']:.4%} | {acc['metric_change']['Qabf']:+.5f} | "
                     f"{acc['metric_change']['VIF']:+.5f} | {mask} |")
    lines += ['', '## Speed (TensorRT)', '',
              '| model | size | model-only frames/s | p50 / p95 ms | node fused/s | node p50 / p95 ms |',
              '|---|---|---:|---:|---:|---:|']
    for model, sizes in report['speed'].items():
        for size, entry in sizes.items():
            if 'unavailable' in entry:
                lines.append(f"| {model} | {size} | unavailable: {entry['unavailable']} | | | |")
                continue
            only, node = entry['model_only'], entry.get('node', {})
            node_cells = (f"{node['fused_per_s']} | {node['latency_ms'].get('p50')} / {node['latency_ms'].get('p95')}"
                          if node else '- | -')
            lines.append(f"| {model} | {size} | {only['frames_per_s']} | {only['latency_ms']['p50']} / "
                         f"{only['latency_ms']['p95']} | {node_cells} |")
    return '\n'.join(lines) + '\n'


def run(args: argparse.Namespace) -> dict:
    """Run steps 1-3; what could not be done is recorded with its reason."""
    report: dict = {'command': 'benchmarks/first_run.py ' + ' '.join(sys.argv[1:]), 'environment': machine(),
                    'engines': [], 'accuracy': {}, 'speed': {}}
    try:
        report['environment'] = environment()
    except (ImportError, RuntimeError) as err:
        report['stopped'] = str(err)
        return report
    settings = BuildSettings(args.precision)
    report['engines'] = [build_one(model, settings, args.engine_dir, force=False)
                         for model in shipped_models(args.models)]
    pairs = pair_folders(args.pairs / 'ir', args.pairs / 'vi').pairs[:args.pairs_limit]
    samples = [(ir.stem, read_ir(ir), read_visible(vis)) for ir, vis in pairs]   # the pipeline registers them
    for row in report['engines']:
        if row['action'] == 'failed':
            continue
        model = args.models / row['model']
        report['accuracy'][row['model']] = accuracy(model, Path(row['plan']), samples)
        report['speed'][row['model']] = {label: measure(model, 'tensorrt', label, args) for label in args.sizes}
    return report


def main(argv: list[str] = None) -> int:
    """Run and write both reports; exit status 1 when anything failed or could not run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=Path, default=REPO / 'models')
    parser.add_argument('--pairs', type=Path, default=REPO / 'tests' / 'data' / 'pairs')
    parser.add_argument('--pairs-limit', type=int, default=100, help='at most this many bundled pairs')
    parser.add_argument('--engine-dir', type=Path, default=None, help='default: the node\'s ($ROS_HOME/fusion_ros/'
                        'engines)')
    add_timing_arguments(parser)
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'first_gpu_run',
                        help='writes <out>.json and <out>.md')
    args = parser.parse_args(argv)
    args.engine_dir = args.engine_dir or engine_dir()
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix('.json').write_text(json.dumps(report, indent=2) + '\n')
    if 'stopped' in report:
        print(f'first run stopped: {report["stopped"]}', file=sys.stderr)
    else:
        args.out.with_suffix('.md').write_text(markdown(report))
    print(f'wrote {args.out}.json' + ('' if 'stopped' in report else f' and {args.out}.md'))
    failed = 'stopped' in report or any(r['action'] == 'failed' for r in report['engines']) or any(
        'unavailable' in e for sizes in report['speed'].values() for e in sizes.values())
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
