"""`fusion-ros demo`: fuse the bundled sample pairs and evaluate them beside the max/mean baselines."""

import argparse
from pathlib import Path
import sys

from fusion_ros.cli.fuse import fuse_folders
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.evaluation.evaluate import evaluate_folders

SAMPLES = Path(__file__).resolve().parents[2] / 'tests' / 'data' / 'pairs'


def add_parser(subparsers) -> None:
    """Register the `demo` sub-command."""
    parser = subparsers.add_parser('demo', help='fuse and evaluate the bundled sample pairs', description=__doc__)
    parser.add_argument('--pairs', type=Path, default=SAMPLES, help='folder with ir/ and vi/ (default: bundled)')
    parser.add_argument('--out', type=Path, default=Path('demo_out'), help='output folder (default: demo_out)')
    parser.add_argument('--model', type=Path, help='ONNX model with card (default: the shipped target-aware SeAFusion)')
    parser.add_argument('--backend', default='onnxruntime')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fuse into OUT/fused, evaluate into OUT, print the summary table."""
    if not (args.pairs / 'ir').is_dir() or not (args.pairs / 'vi').is_dir():
        print(f'fusion-ros demo: error: {args.pairs} needs ir/ and vi/ sub-folders (the bundled samples live in '
              'tests/data/pairs of a source checkout)', file=sys.stderr)
        return 2
    try:
        pipeline = FusionPipeline.from_model(args.model, backend=args.backend)
    except (ValueError, FileNotFoundError) as err:
        print(f'fusion-ros demo: error: {err}', file=sys.stderr)
        return 2
    fused_dir = args.out / 'fused'
    report = fuse_folders(pipeline, args.pairs / 'ir', args.pairs / 'vi', fused_dir)
    for name, reason in report.failed.items():
        print(f'skipped {name}: {reason}', file=sys.stderr)
    print(f'fused {len(report.fused)} pairs into {fused_dir} ({report.seconds:.1f} s)')
    evaluate_folders({pipeline.card.method: fused_dir}, args.pairs / 'ir', args.pairs / 'vi', args.out,
                     baselines=True)
    print((args.out / 'summary.md').read_text())
    print(f'per-image metrics, summary and CDF plots: {args.out}/')
    return 0 if report.fused else 1
