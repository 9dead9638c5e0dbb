"""
Validate the fp16 graph of an exported model and pin it in the model card (``provenance.fp16``).

    python -m training.deploy.fp16 models/seafusion.onnx [models/seafusion_float.onnx ...] [--samples tests/data/pairs]

training.deploy.export calls ``attach_fp16`` for every graph it writes; this command does the same for
graphs exported earlier. The conversion itself (fusion_ros/tensorrt/fp16_graph.py) is part of the
runtime: it is deterministic, so the TensorRT builder derives the very same bytes on the target,
checked against the sha256 pinned here, and models ship without an fp16 file. Ops a network keeps
in fp32 are the op types its module declares in ``FP32_OPS`` and node-name prefixes in
``FP32_NODES`` (CoCoNet's attention, ReFusion's norms: methods.md; fp16 overflows there); the card
records them, so the runtime needs no torch to repeat the conversion.

The fp16 graph passes onnx.checker with strict type inference, and is validated against the
fp32 graph on real pairs with ONNX Runtime, fp16 storage emulated (every tensor the fp16
graph holds in half precision rounded to it; ONNX Runtime on a CPU would silently run fp16
ops without CPU kernels in fp32 and hide an overflow): max and mean grey-level difference of the fused image,
share of pixels off by more than one level, metric change, mask agreement. Those numbers, the
kept ops and the file's sha256 go into the model card. A graph off by more than FP16_MAX_LEVELS
(max) or FP16_MEAN_LEVELS (mean) is an error: something overflows that is not kept in fp32.

Not onnxconverter-common (1.16.0): its convert_float_to_float16 leaves Cast(to=FLOAT) nodes as
they are, and these graphs begin by casting their uint8 inputs to float, so the result feeds
fp16 ops with float tensors and ONNX Runtime refuses to load it.
"""

import argparse
from dataclasses import replace
from pathlib import Path
import sys
import tempfile
from typing import Optional

import numpy as np
import onnx
import onnxruntime as ort

from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fusion_ros.core.model_card import card_path_for, load_card, ModelCard, save_card, sha256_of
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.evaluation import metrics
from fusion_ros.tensorrt.fp16_graph import convert, Fp32Keep
from training.deploy.samples import load_samples

FP16_MAX_LEVELS, FP16_MEAN_LEVELS = 32, 0.5
METRICS = ('EN', 'SF', 'MI', 'VIF', 'Qabf', 'SSIM')


def keep_for(method: str) -> Fp32Keep:
    """Read what a method's network module declares (FP32_OPS, FP32_NODES); nothing for unknown methods."""
    from fusion_ros.networks.registry import declared     # torch: only the exporter needs it, not a GPU check
    return Fp32Keep(tuple(declared(method, 'FP32_OPS', ())), tuple(declared(method, 'FP32_NODES', ())))


def compare_pipelines(reference: FusionPipeline, candidate: FusionPipeline, samples) -> dict:
    """
    Measure how far the candidate's fused images (and masks) are from the reference's, and the metric change.

    Used for fp16 vs fp32 here and for TensorRT vs ONNX Runtime by benchmarks/first_run.py.
    """
    diffs, scores, masks = [], {m: ([], []) for m in METRICS}, []
    kind = (reference.card.mask or {}).get('kind')
    for _, ir, vis in samples:
        want, got = reference.fuse(ir, vis), candidate.fuse(ir, vis)
        diffs.append(np.abs(want.fused_bgr.astype(np.int16) - got.fused_bgr.astype(np.int16)).ravel())
        gray_ir, gray_vis = (metrics.as_gray(image) for image in reference.prepare(ir, vis))   # registered
        for result, column in ((want, 0), (got, 1)):
            values = metrics.compute_all(metrics.as_gray(result.fused_bgr), gray_ir, gray_vis)
            for m in METRICS:
                scores[m][column].append(values[m])
        if kind:
            masks.append(float(np.mean(want.mask == got.mask)) if kind == 'classes'
                         else float(np.abs(want.mask.astype(np.int16) - got.mask.astype(np.int16)).max()))
    flat = np.concatenate(diffs)
    report = {'samples': [s[0] for s in samples],
              'max_abs_levels': int(flat.max()), 'mean_abs_levels': round(float(flat.mean()), 4),
              'share_off_by_more_than_1': round(float(np.mean(flat > 1)), 6),
              'metrics_reference': {m: round(float(np.mean(v[0])), 4) for m, v in scores.items()},
              'metric_change': {m: round(float(np.mean(v[1]) - np.mean(v[0])), 5) for m, v in scores.items()}}
    if kind == 'classes':
        report['class_map_equal_share'] = round(min(masks), 5)
    elif kind:
        report['saliency_max_abs_levels'] = int(max(masks))
    return report


def validate(fp32_path: Path, fp16_path: Path, card: ModelCard, samples, keep: Fp32Keep, threads: int = 0) -> dict:
    """
    fp16 vs fp32 on real pairs through the node's pipeline on ONNX Runtime.

    The numbers come from the emulation (every fp16 tensor rounded to half precision, each op in
    fp32 as tensor-core kernels accumulate), which shows an overflow wherever the fp16 graph has
    one; the fp16 file itself is loaded and run once, on a crop of the first pair.
    """
    emulated, _ = convert(onnx.load(str(fp32_path)), keep, emulate=True)
    with tempfile.TemporaryDirectory() as folder:
        emulated_path = Path(folder) / 'emulated_fp16.onnx'
        onnx.save(emulated, str(emulated_path))
        fp32, fp16 = (FusionPipeline(card, OnnxRuntimeBackend(path, card, threads))
                      for path in (fp32_path, emulated_path))
        report = compare_pipelines(fp32, fp16, samples)
    _, ir, vis = samples[0]
    FusionPipeline(card, OnnxRuntimeBackend(fp16_path, card, threads)).fuse(ir[:64, :64], vis[:64, :64])
    return {'reference': Path(fp32_path).name, 'compared': Path(fp16_path).name,
            'runtime': f'onnxruntime {ort.__version__} CPU, fp16 storage emulated (tensors rounded to half '
                       'precision, ops in fp32)', **report}


def fp16_name(model_path: Path) -> str:
    """<model stem>_fp16.onnx: the name the fp16 graph has in the card, the engine folder and plan names."""
    return f'{Path(model_path).stem}_fp16.onnx'


def attach_fp16(model_path: Path, samples, threads: int = 0) -> dict:
    """
    Convert, check and validate the fp16 graph of an exported graph and pin it in the card; returns the entry.

    The graph is written to a temporary folder only: the TensorRT builder derives it again where
    the engine is built, so its weights are not shipped a second time.
    """
    model_path = Path(model_path)
    card = load_card(model_path)
    keep = keep_for(card.method)
    converted, kept = convert(onnx.load(str(model_path)), keep)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / fp16_name(model_path)
        onnx.save(converted, str(out))
        report = validate(model_path, out, card, samples, keep, threads)
        digest = sha256_of(out)
    if report['max_abs_levels'] > FP16_MAX_LEVELS or report['mean_abs_levels'] > FP16_MEAN_LEVELS:
        raise RuntimeError(f'the fp16 graph of {model_path.name} differs from fp32 by up to {report["max_abs_levels"]} '
                           f'grey levels (mean {report["mean_abs_levels"]}): something overflows in half precision; '
                           f'declare those ops in FP32_OPS of the network module')
    entry = {'onnx': out.name, 'sha256': digest, 'converter': 'fusion_ros.tensorrt.fp16_graph',
             'onnx_version': onnx.__version__, 'fp32_ops': list(keep.op_types),
             'fp32_node_prefixes': list(keep.node_prefixes), 'nodes_kept_fp32': kept, 'validation': report}
    save_card(replace(card, provenance={**card.provenance, 'fp16': entry}), card_path_for(model_path))
    return entry


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point: fp16 graphs for graphs exported before training.deploy.export wrote them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='+', type=Path)
    parser.add_argument('--samples', type=Path, default=Path(__file__).resolve().parent.parent / 'tests' / 'data'
                        / 'pairs')
    parser.add_argument('--limit', type=int, default=100, help='at most this many sample pairs')
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args(argv)
    samples = load_samples(args.samples, args.limit)
    for path in args.models:
        entry = attach_fp16(path, samples, args.threads)
        v = entry['validation']
        print(f"{entry['onnx']}: max {v['max_abs_levels']} / mean {v['mean_abs_levels']} grey levels vs fp32, "
              f"{entry['nodes_kept_fp32']} nodes kept fp32, metric change {v['metric_change']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
