"""
`fusion-ros fuse`: fuse every IR + visible pair of two folders with the shared pipeline.

Pairs by file stem; the output keeps the visible file's name. Missing partners
and unreadable or unfusable files are reported and skipped, the rest is still
fused; the exit code is non-zero only when nothing could be fused.
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path
import sys
import time
from typing import Optional

import cv2
from tqdm import tqdm

from fusion_ros.backends import BackendOptions
from fusion_ros.backends.base import BackendError
from fusion_ros.cli.arguments import add_folder_arguments
from fusion_ros.core.imageio import pair_folders, read_ir, read_visible, shadowed_reason, write_image_atomic
from fusion_ros.core.pipeline import FusionPipeline, IrGain
from fusion_ros.core.registration import REGISTRATION_MODES, make_registration


@dataclass
class FuseReport:
    """What a folder run did, for the summary line and for tests."""

    fused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # file name -> reason
    unpaired: list[str] = field(default_factory=list)
    shadowed: dict[str, str] = field(default_factory=dict)   # file left out -> why (another file has its stem)
    seconds: float = 0.0


def prepare_output(out_dir: Path, inputs: dict[str, Path]) -> Path:
    """Create the output folder; ValueError if it is an input folder (results would overwrite inputs) or cannot be."""
    out_dir = Path(out_dir)
    for flag, folder in inputs.items():
        if out_dir.resolve() == Path(folder).resolve():
            raise ValueError(f'--out {out_dir} is the {flag} folder: writing there would overwrite the inputs')
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f'cannot create the output folder {out_dir}: {err.strerror or err}') from None
    return out_dir


def fuse_folders(pipeline: FusionPipeline, ir_dir: Path, vis_dir: Path, out_dir: Path,
                 progress: bool = True) -> FuseReport:
    """Fuse all pairs, writing each result atomically as soon as it is ready."""
    pairing = pair_folders(ir_dir, vis_dir)
    out_dir = prepare_output(out_dir, {'--ir': ir_dir, '--vis': vis_dir})
    report = FuseReport(unpaired=[p.name for p in pairing.ir_only + pairing.vis_only],
                        shadowed={ignored.name: shadowed_reason(ignored, used) for ignored, used in pairing.shadowed})
    started = time.perf_counter()
    for ir_path, vis_path in tqdm(pairing.pairs, desc='fuse', unit='pair', disable=not progress, dynamic_ncols=True):
        try:
            vis = read_visible(vis_path)
            fused = pipeline.fuse(read_ir(ir_path), vis).fused_bgr
            if vis.ndim == 2:  # keep gray sources gray on disk
                fused = cv2.cvtColor(fused, cv2.COLOR_BGR2GRAY)
            write_image_atomic(out_dir / vis_path.name, fused)
            report.fused.append(vis_path.name)
        except (ValueError, BackendError, OSError) as err:
            report.failed[vis_path.name] = str(err)
    report.seconds = time.perf_counter() - started
    return report


def add_parser(subparsers) -> None:
    """Register the `fuse` sub-command."""
    parser = subparsers.add_parser('fuse', help='fuse the IR + visible pairs of two folders',
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_folder_arguments(parser, ir='folder of infrared images', vis='folder of visible images (same stems)',
                         out='output folder (created)')
    parser.add_argument('--model', type=Path, help='ONNX model with its JSON card (default: shipped SeAFusion)')
    parser.add_argument('--backend', default='onnxruntime', choices=('onnxruntime', 'tensorrt', 'torch'),
                        help='inference backend (default: onnxruntime; tensorrt builds or reuses the engine first)')
    parser.add_argument('--precision', default='fp16', choices=('fp16', 'fp32'),
                        help='tensorrt and torch on CUDA (default: fp16)')
    parser.add_argument('--threads', type=int, default=0, help='backend CPU threads (0: runtime default)')
    parser.add_argument('--registration', default='resize', choices=REGISTRATION_MODES,
                        help='how IR is brought into the visible frame (default: resize)')
    parser.add_argument('--homography', type=float, nargs=9, metavar='H',
                        help='row-major 3x3 IR->visible homography, for --registration homography')
    parser.add_argument('--ir-gain', default='fixed', choices=('fixed', 'minmax', 'percentile'),
                        help='16-bit IR to 8-bit mapping (default: fixed full range)')
    parser.add_argument('--ir-range', type=float, nargs=2, metavar=('LOW', 'HIGH'), help='range for --ir-gain fixed')
    parser.add_argument('--ir-percentiles', type=float, nargs=2, default=(1.0, 99.0), metavar=('LOW', 'HIGH'))
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute `fuse`; prints a summary and every skipped file with its reason."""
    low, high = args.ir_range if args.ir_range else (0.0, None)
    try:
        pipeline = FusionPipeline.from_model(
            args.model, backend=args.backend,
            registration=make_registration(args.registration, args.homography),
            ir_gain=IrGain(args.ir_gain, low, high, tuple(args.ir_percentiles)),
            options=BackendOptions(threads=args.threads, precision=args.precision))
        report = fuse_folders(pipeline, args.ir, args.vis, args.out, progress=not args.quiet)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
        print(f'fusion-ros fuse: error: {err}', file=sys.stderr)
        return 2
    for name in report.unpaired:
        print(f'skipped {name}: no partner with the same name in the other folder', file=sys.stderr)
    for name, reason in report.shadowed.items():
        print(f'skipped {name}: {reason}', file=sys.stderr)
    for name, reason in report.failed.items():
        print(f'skipped {name}: {reason}', file=sys.stderr)
    per = report.seconds / max(len(report.fused), 1)
    print(f'fused {len(report.fused)} pair(s) into {args.out} in {report.seconds:.1f} s ({per * 1000:.0f} ms/pair); '
          f'{len(report.failed)} failed, {len(report.unpaired)} without partner')
    return 0 if report.fused else 1


def main(argv: Optional[list[str]] = None) -> int:
    """Run `fuse` on its own (used by tests and benchmarks)."""
    parser = argparse.ArgumentParser(prog='fusion-ros')
    add_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['fuse', *(argv or sys.argv[1:])])
    return args.func(args)
