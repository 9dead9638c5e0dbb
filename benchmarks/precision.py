"""
What fp16 does to the fused image: every shipped model run in fp32 and in fp16, on the bundled pairs.

    .venv/bin/python benchmarks/precision.py [--models models] [--out benchmarks/results/precision.json]

The networks (rebuilt from the exported weights, read from the graph or ``models/<name>.pt``) run
once in fp32 and once with weights and activations in fp16 (PyTorch, CPU), with the colour maths in fp32 as in the uint8
graphs. Reported per model: the largest and mean absolute difference of the fused BGR image in
grey levels, the share of pixels off by more than one level, the change of the fusion metrics,
and the mask agreement (saliency in levels, class maps in share of equal pixels). TensorRT's fp16
kernels accumulate differently, so this bounds the effect of fp16 storage, not a given engine.
Speed is not measured here (see benchmarks/gpu.py). Prints and saves JSON.
"""

import argparse
import json
from pathlib import Path
import sys

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusion_ros.backends.torch_backend import exported_weights  # noqa: E402
from fusion_ros.core.color import bgr_to_ycrcb, to_uint8, to_unit, ycrcb_to_bgr  # noqa: E402
from fusion_ros.core.model_card import load_card  # noqa: E402
from fusion_ros.evaluation import metrics  # noqa: E402
from fusion_ros.networks.graphs import core_from_weights  # noqa: E402
from training.deploy.samples import load_samples  # noqa: E402

METRICS = ('EN', 'SF', 'MI', 'VIF', 'Qabf', 'SSIM')


def fuse(core, ir: np.ndarray, vis: np.ndarray, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(fused BGR uint8, mask or empty) with the network in `dtype`, colour maths in fp32."""
    y, cr, cb = bgr_to_ycrcb(to_unit(vis))
    with torch.no_grad():
        out = core.to(dtype)(torch.from_numpy(y.astype(np.float32))[None, None].to(dtype),
                             torch.from_numpy(to_unit(ir))[None, None].to(dtype))
    fused = to_uint8(ycrcb_to_bgr(out[0][0, 0].float().numpy(), cr, cb))
    mask = out[1][0, 0].float().numpy() if len(out) == 2 else np.zeros(0)
    return fused, mask


def compare(model: Path, samples) -> dict:
    """fp32 vs fp16 for one model over the samples."""
    card = load_card(model)
    weights = exported_weights(model, card)
    diffs, deltas, masks = [], {m: [] for m in METRICS}, []
    for _, ir, vis in samples:
        core = core_from_weights(weights)
        f32, m32 = fuse(core, ir, vis, torch.float32)
        f16, m16 = fuse(core, ir, vis, torch.float16)
        diffs.append(np.abs(f32.astype(int) - f16.astype(int)))
        gray_ir, gray_vis = metrics.as_gray(ir), metrics.as_gray(vis)
        s32 = metrics.compute_all(metrics.as_gray(f32), gray_ir, gray_vis)
        s16 = metrics.compute_all(metrics.as_gray(f16), gray_ir, gray_vis)
        for m in METRICS:
            deltas[m].append(s16[m] - s32[m])
        if m32.size:
            masks.append(float(np.mean(m32 == m16)) if card.mask['kind'] == 'classes'
                         else float(np.abs(m32 - m16).max() * 255))
    flat = np.concatenate([d.ravel() for d in diffs])
    result = {'samples': len(samples), 'max_abs_levels': int(flat.max()),
              'mean_abs_levels': round(float(flat.mean()), 4),
              'share_off_by_more_than_1': round(float(np.mean(flat > 1)), 6),
              'metric_change_fp16_minus_fp32': {m: round(float(np.mean(v)), 5) for m, v in deltas.items()}}
    if masks:
        key = 'class_map_equal_share' if card.mask['kind'] == 'classes' else 'saliency_max_abs_levels'
        result[key] = round(float(np.min(masks) if card.mask['kind'] == 'classes' else np.max(masks)), 4)
    return result


def main() -> None:
    """Compare every uint8 model of the folder; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=Path, default=REPO / 'models')
    parser.add_argument('--samples', type=Path, default=REPO / 'tests' / 'data' / 'pairs')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'precision.json')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samples = load_samples(args.samples, limit=100)
    results = {}
    for model in sorted(args.models.glob('*.onnx')):
        card = load_card(model, verify=False)
        if card.graph == 'uint8' and 'torch_weights' in card.provenance:
            results[model.name] = compare(model, samples)
            print(model.name, json.dumps(results[model.name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'torch': torch.__version__, 'device': 'cpu', 'models': results}, indent=2) + '\n')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
