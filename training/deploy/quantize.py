"""
Static int8 (QDQ) quantization of an exported fusion graph, validated against its fp32 graph (issue 13).

    python -m training.deploy.quantize --model models/seafusion.onnx [--out models/seafusion_int8.onnx]
        [--calibration ../shared/datasets/msrs ../shared/datasets/roadscene ...] [--frames 24]
        [--keep-float NAME_PART ...] [--min-speedup 1.6] [--max-metric-change 0.01]

* Calibration: real frames from folders with ``ir/`` and ``vi/`` (default: the training sources in
  the model's card), never a pair the card lists as held out; ONNX Runtime MinMax ranges.
* What is quantized: only the network inside the graph (node names under ``/core/``) and only
  Conv, LeakyRelu, Add and Concat, so int8 tensors flow from conv to conv. What stays float, and
  why: the uint8 graph's colour maths (YCrCb in and out, rounding: integer-valued already and
  cheap), every conv feeding an Abs and the Adds of those Abs (SeAFusion's Sobel |gx| + |gy|
  stream: its magnitude distribution is long-tailed and sign-folded, one scale cannot hold it),
  and the last conv of the network (it feeds tanh or the blend maps, where one int8 step is
  about a grey level). ``--keep-float`` adds nodes by name substring.
* Validation: both graphs fuse the card's held-out pairs through the runtime pipeline; the card
  gets the max/mean grey-level difference, the share of pixels off by more than one level, every
  metric for both (fusion_ros.evaluation.evaluate) and the speed of both at 640x480 (ms per frame, 1 and 2
  ONNX Runtime threads, with the load average at the time).
* Gate: the graph and its card are written only if int8 is at least ``--min-speedup`` times faster
  (2 threads) and Qabf and VIF move by at most ``--max-metric-change`` (relative); otherwise the
  report is written beside where the graph would have gone (``<out stem>.rejected.json``) and the
  command exits with status 1. The card keeps the fp32 card's training provenance and adds
  ``quantization``; the graph kind and tensors are unchanged, so the node and ``fusion-ros fuse``
  load it through the card alone.
"""

import argparse
from dataclasses import replace
import json
import os
from pathlib import Path
import random
import statistics
import sys
import tempfile
import time
from typing import Callable, Iterator, Optional

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from fusion_ros.core.imageio import pair_folders, read_ir, read_visible, write_image_atomic
from fusion_ros.core.model_card import card_path_for, load_card, ModelCard, save_card, sha256_of
from fusion_ros.core.pipeline import FusionPipeline, visible_to_bgr
from fusion_ros.core.registration import make_registration, register_ir
from fusion_ros.evaluation.evaluate import evaluate_folders

CORE_PREFIX = '/core/'
QUANTIZED_OPS = ('Conv', 'LeakyRelu', 'Add', 'Concat')
SPEED_SIZE = (480, 640)
GATED_METRICS = ('Qabf', 'VIF')
Frame = tuple[str, np.ndarray, np.ndarray]   # name, IR uint8 registered to the visible frame, visible BGR uint8


def read_frame(ir_path: Path, vis_path: Path) -> Frame:
    """Read a pair as the runtime feeds it to a uint8 graph (IR resized into the visible frame)."""
    vis = visible_to_bgr(read_visible(vis_path))
    return ir_path.stem, register_ir(read_ir(ir_path), vis.shape[:2], make_registration('resize')), vis


def holdout(card: ModelCard) -> tuple[set[str], Optional[dict]]:
    """(held-out pair names, the source they come from) as the card records them."""
    data = card.provenance.get('data') or {}
    names = set((data.get('holdout') or {}).get('names') or [])
    source = next((s for s in data.get('sources') or [] if s['name'] == (data.get('holdout') or {}).get('source')),
                  None)
    return names, source


def calibration_frames(folders: list[Path], held_out: set[str], count: int, seed: int) -> list[Frame]:
    """`count` pairs drawn evenly from the folders (each with ir/ and vi/), none of them held out."""
    pools = []
    for folder in folders:
        pairs = [p for p in pair_folders(Path(folder) / 'ir', Path(folder) / 'vi').pairs if p[0].stem not in held_out]
        if not pairs:
            raise FileNotFoundError(f'no calibration pairs under {folder}/ir and {folder}/vi (held-out pairs excluded)')
        random.Random(seed).shuffle(pairs)
        pools.append(pairs)
    chosen = [pool[k // len(pools)] for k in range(count) for pool in [pools[k % len(pools)]]
              if k // len(pools) < len(pool)]
    return [read_frame(ir, vis) for ir, vis in chosen]


class FrameReader(CalibrationDataReader):
    """Feeds calibration frames to ONNX Runtime's calibrator as uint8 graph inputs (frames may differ in size)."""

    def __init__(self, frames: list[Frame]):
        self.frames: Iterator[Frame] = iter(frames)

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        frame = next(self.frames, None)
        return None if frame is None else {'ir': frame[1], 'visible_bgr': frame[2]}


def float_nodes(model: onnx.ModelProto, keep: tuple[str, ...] = ()) -> list[str]:
    """
    Names of core nodes of QUANTIZED_OPS types that must stay float (see the module docstring).

    The gradient stream is found by structure (a conv whose output an Abs reads; an Add of Abs
    outputs), the output conv as the last core conv in graph order, so the rule holds for any
    network exported through fusion_ros.networks.graphs.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep_float = set()
    for node in model.graph.node:
        if not node.name.startswith(CORE_PREFIX):
            continue
        if node.op_type == 'Conv' and any(c.op_type == 'Abs' for c in consumers.get(node.output[0], [])):
            keep_float.add(node.name)
        if node.op_type == 'Add' and any(producer.get(i) is not None and producer[i].op_type == 'Abs'
                                         for i in node.input):
            keep_float.add(node.name)
        if any(part in node.name for part in keep):
            keep_float.add(node.name)
    core_convs = [n.name for n in model.graph.node if n.op_type == 'Conv' and n.name.startswith(CORE_PREFIX)]
    if core_convs:
        keep_float.add(core_convs[-1])
    return sorted(keep_float)


def quantize(model: Path, out: Path, frames: list[Frame], keep: tuple[str, ...] = (),
             method: str = 'MinMax') -> dict:
    """Write the QDQ graph of `model` to `out`; returns what was quantized and what stayed float."""
    with tempfile.TemporaryDirectory() as tmp:
        inferred = Path(tmp) / 'inferred.onnx'
        # Shape inference only: ONNX Runtime's optimisations would bake its own ops into the graph.
        quant_pre_process(str(model), str(inferred), skip_optimization=True)
        graph = onnx.load(str(inferred))
        stay = float_nodes(graph, keep)
        targets = [n.name for n in graph.graph.node if n.name.startswith(CORE_PREFIX)
                   and n.op_type in QUANTIZED_OPS and n.name not in stay]
        quantize_static(str(inferred), str(out), FrameReader(frames),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZED_OPS),
                        nodes_to_quantize=targets, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod[method])
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    return {'quantized_nodes': len(targets), 'float_nodes': stay}


def fuse_all(model: Path, frames: list[Frame], folder: Path) -> list[np.ndarray]:
    """Fuse frames through the runtime pipeline (2 threads), writing PNGs named like the visible images."""
    pipeline = FusionPipeline.from_model(model, threads=2)
    folder.mkdir(parents=True, exist_ok=True)
    fused = []
    for name, ir, vis in frames:
        image = pipeline.fuse(ir, vis).fused_bgr
        write_image_atomic(folder / f'{name}.png', image)
        fused.append(image)
    pipeline.close()
    return fused


def compare(fp32: Path, int8: Path, pairs: list[tuple[Path, Path]], work: Path) -> dict:
    """Grey-level differences and every metric of both graphs on the same pairs."""
    frames = [read_frame(ir, vis) for ir, vis in pairs]
    reference = fuse_all(fp32, frames, work / 'fp32')
    quantized = fuse_all(int8, frames, work / 'int8')
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(quantized, reference)]
    for sub, index in (('ir', 0), ('vi', 1)):
        (work / sub).mkdir(exist_ok=True)
        for pair in pairs:
            link = work / sub / pair[index].name
            if not link.exists():
                link.symlink_to(Path(pair[index]).resolve())
    summary = evaluate_folders({'fp32': work / 'fp32', 'int8': work / 'int8'}, work / 'ir', work / 'vi',
                               work / 'evaluation', progress=False)
    means = {k: {m: s['mean'] for m, s in summary[k].items()} for k in ('fp32', 'int8')}
    change = {m: round(means['int8'][m] - means['fp32'][m], 5) for m in means['fp32']}
    relative = {m: round(change[m] / abs(means['fp32'][m]), 5) for m in means['fp32'] if means['fp32'][m]}
    return {'pairs': len(pairs), 'max_abs_diff': int(max(d.max() for d in diffs)),
            'mean_abs_diff': round(float(np.mean([d.mean() for d in diffs])), 4),
            'pixels_off_by_more_than_1': round(float(np.mean([(d > 1).mean() for d in diffs])), 5),
            'metrics_fp32': means['fp32'], 'metrics_int8': means['int8'], 'change': change,
            'relative_change': relative}


def speed(model: Path, frame: Frame, threads: int, runs: int) -> float:
    """Median ms per backend.run at 640x480 (the frame resized), after one warm-up call."""
    pipeline = FusionPipeline.from_model(model, threads=threads)
    _, ir, vis = frame
    size = (SPEED_SIZE[1], SPEED_SIZE[0])
    feeds = {'ir': cv2.resize(ir, size, interpolation=cv2.INTER_AREA),
             'visible_bgr': cv2.resize(vis, size, interpolation=cv2.INTER_AREA)}
    pipeline.backend.run(feeds)
    median = statistics.median(elapsed_ms(lambda: pipeline.backend.run(feeds)) for _ in range(runs))
    pipeline.close()
    return round(median, 1)


def elapsed_ms(fn: Callable[[], object]) -> float:
    """Wall milliseconds of one call."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def speeds(fp32: Path, int8: Path, frame: Frame, runs: int) -> dict:
    """Time both graphs (ms per frame) at 1 and 2 threads, interleaved so load changes hit both alike."""
    result: dict = {'size': f'{SPEED_SIZE[1]}x{SPEED_SIZE[0]}', 'runs': runs,
                    'load_average_before': round(os.getloadavg()[0], 2), 'cores': os.cpu_count()}
    for threads in (1, 2):
        a, b = speed(fp32, frame, threads, runs), speed(int8, frame, threads, runs)
        result[f'{threads}_thread'] = {'fp32_ms': a, 'int8_ms': b, 'speedup': round(a / b, 2)}
    result['load_average_after'] = round(os.getloadavg()[0], 2)
    return result


def int8_card(card: ModelCard, out: Path, report: dict) -> ModelCard:
    """Re-pin the fp32 card to the int8 graph: training provenance kept, fp32-only entries dropped."""
    provenance = {k: v for k, v in card.provenance.items()
                  if k not in ('torch_weights', 'parity', 'metrics', 'comparison')}
    opset = max(o.version for o in onnx.load(str(out)).opset_import if o.domain in ('', 'ai.onnx'))
    return replace(card, onnx=out.name, sha256=sha256_of(out), opset=opset,
                   provenance={**provenance, 'quantization': report})


def gate(report: dict, min_speedup: float, max_change: float) -> dict:
    """Is int8 worth shipping: 2-thread speed-up and the worst relative change of Qabf and VIF against the limits."""
    worst = max(abs(report['validation']['relative_change'][m]) for m in GATED_METRICS)
    gain = report['speed']['2_thread']['speedup']
    return {'min_speedup': min_speedup, 'speedup_2_threads': gain, 'max_relative_change': max_change,
            'worst_of': list(GATED_METRICS), 'worst_relative_change': worst,
            'passed': gain >= min_speedup and worst <= max_change}


def run(model: Path, out: Path, calibration: list[Path], frames: int, keep: tuple[str, ...], min_speedup: float,
        max_change: float, speed_runs: int, seed: int = 0) -> tuple[bool, dict]:
    """Quantize, validate and gate; returns (shipped, report)."""
    card = load_card(model)
    if card.graph != 'uint8':
        raise ValueError(f'{model} is a {card.graph!r} graph; quantize the uint8 graph the node loads')
    held_out, source = holdout(card)
    if not held_out or source is None:
        raise ValueError(f'the card of {model} lists no held-out pairs to validate on (re-export with a run folder)')
    folders = calibration or sorted({Path(s['ir']).parent for s in card.provenance['data']['sources']})
    calib = calibration_frames(folders, held_out, frames, seed)
    pairs = [p for p in pair_folders(source['ir'], source['vis']).pairs if p[0].stem in held_out]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / out.name
        report = {'precision': 'int8', 'format': 'QDQ, per-channel int8 weights, uint8 activations (MinMax)',
                  'quantized_from': {'file': model.name, 'sha256': card.sha256},
                  'command': 'python -m training.deploy.quantize ' + ' '.join(sys.argv[1:]),
                  'onnxruntime': ort.__version__, 'quantized_ops': list(QUANTIZED_OPS),
                  **quantize(model, candidate, calib, keep),
                  'calibration': {'frames': len(calib), 'folders': [str(f) for f in folders],
                                  'names': [f[0] for f in calib]}}
        save_card(int8_card(card, candidate, report), card_path_for(candidate))  # the pipeline loads graphs by card
        report['validation'] = compare(model, candidate, pairs, Path(tmp) / 'validation')
        report['speed'] = speeds(model, candidate, calib[0], speed_runs)
        report['gate'] = gate(report, min_speedup, max_change)
        if not report['gate']['passed']:
            rejected = out.with_name(out.stem + '.rejected.json')
            rejected.write_text(json.dumps(report, indent=2) + '\n')
            return False, report
        candidate.replace(out)
    save_card(int8_card(card, out, report), card_path_for(out))
    return True, report


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, type=Path,
                        help='uint8 graph with its card, e.g. models/seafusion.onnx')
    parser.add_argument('--out', type=Path, help='default: <model stem>_int8.onnx beside the model')
    parser.add_argument('--calibration', nargs='+', type=Path, default=[],
                        help='folders with ir/ and vi/ (default: the training sources in the card)')
    parser.add_argument('--frames', type=int, default=24, help='calibration frames')
    parser.add_argument('--keep-float', nargs='*', default=[], help='also keep nodes whose name contains one of these')
    parser.add_argument('--min-speedup', type=float, default=1.6, help='int8 vs fp32, 2 threads, 640x480')
    parser.add_argument('--max-metric-change', type=float, default=0.01, help='relative, Qabf and VIF')
    parser.add_argument('--speed-runs', type=int, default=5)
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error('--frames must be >= 1')
    out = args.out or args.model.with_name(args.model.stem + '_int8.onnx')
    shipped, report = run(args.model, out, args.calibration, args.frames, tuple(args.keep_float),
                          args.min_speedup, args.max_metric_change, args.speed_runs)
    print(json.dumps({k: report[k] for k in ('quantized_nodes', 'float_nodes', 'validation', 'speed', 'gate')},
                     indent=2))
    if not shipped:
        print(f'not shipped: {out.with_name(out.stem + ".rejected.json")}', file=sys.stderr)
        raise SystemExit(1)
    print(f'wrote {out} and {card_path_for(out).name}')


if __name__ == '__main__':
    main()
