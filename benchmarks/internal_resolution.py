"""
Can 1080p be fused at a lower internal resolution without losing quality? Measured, not assumed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/internal_resolution.py [--model models/realtime.onnx] \
        [--pairs ../shared/datasets/msrs] [--names models/realtime_run/val_names.txt] \
        [--out benchmarks/results/internal_resolution.json]

The held-out MSRS pairs (48, the models' validation split) are resized to 1920x1080 (bicubic) and
fused at full size through FusionPipeline: today's quality, the reference. Each option fuses the
same pair at a reduced size (pixel-area shrink) and brings it back to 1920x1080:

* `upsample`: bilinear upsampling of the reduced fused frame, nothing else;
* `visible_detail`: plus the visible frame's detail the shrink removed
  (fused = visible + up(fused_small - visible_small)); the graphs keep the visible chroma and the
  YCrCb transform is linear, so this restores visible luminance detail and full-size colour;
* `maxabs_detail`: up(fused_small) plus, per pixel, the larger (in magnitude) of the infrared and
  visible luminance detail layers, the classic multi-scale fusion rule.

Every output is scored with the project's metrics (fusion_ros.evaluation.metrics.compute_all, the
code `fusion-ros evaluate` runs) against the 1080p sources. An option passes when the mean of every
metric is within 2 % of the full-size fusion's mean. Results: JSON with means, ratios, the worst
metric and the verdict.
"""

import argparse
import json
from pathlib import Path
import sys
import time

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusion_ros.core.pipeline import FusionPipeline  # noqa: E402
from fusion_ros.evaluation import metrics  # noqa: E402

SIZE = (1920, 1080)                        # width, height
INTERNAL = {'1280x720': (1280, 720), '960x540': (960, 540)}
TOLERANCE = 0.02


def upsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return image at size (width, height), bilinear."""
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return image at size (width, height), pixel-area average (no aliasing)."""
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def add_luma(bgr: np.ndarray, luma_change: np.ndarray) -> np.ndarray:
    """Add a signed (H, W) luminance change to all three planes: Y moves by it, Cr and Cb stay."""
    return cv2.add(bgr, cv2.merge([luma_change] * 3), dtype=cv2.CV_8U)


def visible_detail(fused_small, vis, vis_small, ir=None, ir_small=None) -> np.ndarray:
    """Return visible + up(fused_small - visible_small): one upsampling of a signed difference."""
    change = cv2.subtract(fused_small, vis_small, dtype=cv2.CV_16S)
    return cv2.add(vis, upsample(change, (vis.shape[1], vis.shape[0])), dtype=cv2.CV_8U)


def maxabs_detail(fused_small, vis, vis_small, ir, ir_small) -> np.ndarray:
    """Return up(fused_small) plus the per-pixel larger of the IR and visible luminance detail layers."""
    size = (vis.shape[1], vis.shape[0])
    vis_y, vis_small_y = (cv2.cvtColor(v, cv2.COLOR_BGR2GRAY) for v in (vis, vis_small))
    d_vis = cv2.subtract(vis_y, upsample(vis_small_y, size), dtype=cv2.CV_16S)
    d_ir = cv2.subtract(ir, upsample(ir_small, size), dtype=cv2.CV_16S)
    detail = np.where(np.abs(d_ir) > np.abs(d_vis), d_ir, d_vis)
    return add_luma(upsample(fused_small, size), detail)


def plain_upsample(fused_small, vis, vis_small=None, ir=None, ir_small=None) -> np.ndarray:
    """Return the reduced fused frame upsampled, with no detail added back."""
    return upsample(fused_small, (vis.shape[1], vis.shape[0]))


OPTIONS = {'upsample': plain_upsample, 'visible_detail': visible_detail, 'maxabs_detail': maxabs_detail}


def fuse_reduced(pipeline: FusionPipeline, ir: np.ndarray, vis: np.ndarray, internal: tuple[int, int],
                 option: str) -> np.ndarray:
    """Fuse a registered same-size 8-bit pair at the internal size and restore full size by option."""
    ir_small, vis_small = shrink(ir, internal), shrink(vis, internal)
    fused_small = pipeline.fuse(ir_small, vis_small).fused_bgr
    return OPTIONS[option](fused_small, vis, vis_small, ir, ir_small)


def scores(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """Every metric for one fused frame against its sources (gray, as `fusion-ros evaluate` scores)."""
    return metrics.compute_all(metrics.as_gray(fused), metrics.as_gray(ir), metrics.as_gray(vis))


def main() -> None:
    """Fuse, score and compare every option; print and save JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'realtime.onnx')
    parser.add_argument('--pairs', type=Path, default=REPO.parent / 'shared' / 'datasets' / 'msrs')
    parser.add_argument('--names', type=Path, default=REPO / 'models' / 'realtime_run' / 'val_names.txt')
    parser.add_argument('--limit', type=int, default=0, help='first N pairs only (0 = all)')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'internal_resolution.json')
    args = parser.parse_args()
    names = args.names.read_text().split()
    names = names[:args.limit] if args.limit else names
    pipeline = FusionPipeline.from_model(args.model, threads=1)
    rows: dict[str, list[dict[str, float]]] = {'full': []}
    started = time.time()
    for name in names:
        ir = cv2.resize(cv2.imread(str(args.pairs / 'ir' / f'{name}.png'), cv2.IMREAD_GRAYSCALE), SIZE,
                        interpolation=cv2.INTER_CUBIC)
        vis = cv2.resize(cv2.imread(str(args.pairs / 'vi' / f'{name}.png'), cv2.IMREAD_COLOR), SIZE,
                         interpolation=cv2.INTER_CUBIC)
        rows['full'].append(scores(pipeline.fuse(ir, vis).fused_bgr, ir, vis))
        for label, internal in INTERNAL.items():
            for option in OPTIONS:
                fused = fuse_reduced(pipeline, ir, vis, internal, option)
                rows.setdefault(f'{label} {option}', []).append(scores(fused, ir, vis))
        print(f'{name} done ({time.time() - started:.0f} s)', flush=True)
    means = {variant: {m: float(np.mean([r[m] for r in values])) for m in metrics.METRIC_NAMES}
             for variant, values in rows.items()}
    verdicts = {}
    for variant, mean in means.items():
        if variant == 'full':
            continue
        ratios = {m: round(mean[m] / means['full'][m], 4) for m in metrics.METRIC_NAMES if means['full'][m]}
        worst = max(ratios, key=lambda m: abs(ratios[m] - 1))
        verdicts[variant] = {'ratios': ratios, 'worst': worst, 'worst_ratio': ratios[worst],
                             'within_2pct': abs(ratios[worst] - 1) <= TOLERANCE}
    result = {'model': str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
              'pairs': len(names), 'size': f'{SIZE[0]}x{SIZE[1]}', 'source': 'held-out MSRS pairs, bicubic to 1080p',
              'tolerance': TOLERANCE, 'means': {k: {m: round(v, 4) for m, v in mean.items()}
                                                for k, mean in means.items()},
              'options': verdicts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(verdicts, indent=2))


if __name__ == '__main__':
    main()
