"""
Export a trained checkpoint to ONNX, validate it against PyTorch, and write its model card.

    python -m training.deploy.export --checkpoint runs/seafusion/best.pt --out models/seafusion.onnx \
        --samples tests/data/pairs [--metrics demo_out/summary.json]

Writes two graphs (methods.md / design.md):

* ``<out>``: end-to-end uint8, ``ir`` (H, W) + ``visible_bgr`` (H, W, 3) -> ``fused_bgr``
  (H, W, 3); normalisation and YCrCb maths run inside the graph.
* ``<out stem>_float.onnx``: ``visible_y``, ``ir`` (N, 1, H, W) float [0, 1] -> ``fused_y``.

Models with a mask add a second output to both: SGFusion's ``saliency`` (float
[0, 1]; 0..255 in the uint8 graph) or, for a joint SeAFusion run, ``classes``
(uint8 ids of its segmenter applied to the fused luminance); the card's ``mask``
field names it, so the node knows to publish it.

Each set of weights ships once: the float twin reads its weights from the uint8 graph's file
(ONNX external data, training.deploy.shared_weights; its card pins that file too), the torch backend
reads them from the graph's initializers (a ``.pt`` is written only when the graph lacks some,
e.g. a segmenter's folded BatchNorm), and the fp16 twin TensorRT builds for precision fp16,
``<out stem>_fp16.onnx`` (training.deploy.fp16), is validated and pinned in the card but not written:
the builder derives the same bytes on the target. Both graphs have dynamic H and W. Each is
checked with onnx.checker, then run with
ONNX Runtime on real sample pairs and compared to PyTorch: the float graph to
1e-5, or, where reductions over H x W make float32 rounding larger, to within
ROUNDING_FACTOR of PyTorch's own float32 error against a float64 run of the same
network; the uint8 graph to one grey level, class maps to 0.1 % of pixels (argmax
ties). A failed check raises and leaves no card.
"""

import argparse
import copy
from datetime import datetime, timezone
import json
from pathlib import Path
import sys
from typing import Optional
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from fusion_ros import __version__
from fusion_ros.backends.torch_backend import GRAPH_PREFIX, weights_in_graph, weights_path
from fusion_ros.core.color import bgr_to_ycrcb, to_unit
from fusion_ros.core.model_card import card_path_for, load_card, ModelCard, save_card, sha256_of, TensorSpec
from fusion_ros.evaluation.mask_io import BOX_CLASSES, SALIENCY_CLASSES
from fusion_ros.networks.graphs import core_from_weights, FloatGraph, FusionCore, mask_kind, SegmenterGraph, \
    Uint8Graph
from training.common.checkpoint import load_checkpoint
from training.deploy.fp16 import attach_fp16
from training.deploy.samples import load_samples
from training.common.run_log import run_chain
from training.deploy.shared_weights import share_weights

FLOAT_TOL = 1e-5
ROUNDING_FACTOR = 4.0
"""
How much further from a float64 run ONNX Runtime's float graph may be than PyTorch's float32 run.

Networks that sum over H x W (ReFusion's L2 normalisations, LayerNorms) round differently in
every engine: the authors' released ReFusion weights give 2.7e-4 between ONNX Runtime and PyTorch
on a 640x480 sample, so no fixed tolerance both passes them and stays tight for small networks.
Against the exact (float64) result, a faithful graph is about as wrong as PyTorch's own float32
run; a graph with a wrong weight or operator is wrong by orders of magnitude more.
"""
UINT8_TOL = 1
CLASS_TOL = 1e-3   # fraction of pixels whose class may flip where two logits tie within float error

MASK_SPECS = {
    'saliency': ('saliency', 'saliency of the fused scene (SGFusion saliency decoder)', SALIENCY_CLASSES),
    'classes': ('classes', 'class id per pixel of the segmenter on the fused luminance', BOX_CLASSES),
}


def float_specs(kind: Optional[str] = None) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Tensor specs of the float graph."""
    unit = (0.0, 1.0)
    outputs = [TensorSpec('fused_y', 'NCHW', 'float32', unit, 'fused luminance; take chroma from the visible image')]
    if kind:
        name, text, classes = MASK_SPECS[kind]
        outputs.append(TensorSpec(name, 'NCHW', 'float32', unit, text) if kind == 'saliency' else
                       TensorSpec(name, 'NCHW', 'uint8', (0.0, float(len(classes) - 1)), text))
    return ((TensorSpec('visible_y', 'NCHW', 'float32', unit, 'visible luminance (YCrCb Y)'),
             TensorSpec('ir', 'NCHW', 'float32', unit, 'infrared intensity, registered to the visible frame')),
            tuple(outputs))


def uint8_specs(kind: Optional[str] = None) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Tensor specs of the end-to-end uint8 graph."""
    byte = (0.0, 255.0)
    outputs = [TensorSpec('fused_bgr', 'HWC', 'uint8', byte, 'fused image, BGR, visible chroma')]
    if kind:
        name, text, classes = MASK_SPECS[kind]
        top = 255.0 if kind == 'saliency' else float(len(classes) - 1)
        outputs.append(TensorSpec(name, 'HW', 'uint8', (0.0, top), text))
    return ((TensorSpec('ir', 'HW', 'uint8', byte, 'infrared, registered to the visible frame'),
             TensorSpec('visible_bgr', 'HWC', 'uint8', byte, 'visible image, BGR (gray: replicate to 3 planes)')),
            tuple(outputs))


def card_mask(kind: Optional[str]) -> Optional[dict]:
    """Return the card's mask field: which output holds the mask, what it is, and its class names."""
    if not kind:
        return None
    name, _, classes = MASK_SPECS[kind]
    return {'output': name, 'kind': kind, 'classes': list(classes)}


def export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, inputs, outputs,
                 dynamic_axes: dict, opset: int) -> None:
    """
    torch.onnx.export plus onnx.checker; pass the module in eval mode (export restores its mode recursively).

    The TorchScript exporter is used on purpose: the dynamo exporter needs onnxscript (another
    dependency) and gives no better graph for these conv-only networks; its deprecation
    warning is silenced here and nowhere else.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=opset,
                          input_names=[t.name for t in inputs], output_names=[t.name for t in outputs],
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def _mask_mismatch(got: np.ndarray, ref: np.ndarray, kind: str) -> float:
    """Saliency: max |diff| (grey levels or units); class ids: fraction of pixels that differ (argmax ties)."""
    if kind == 'classes':
        return float(np.mean(got != ref))
    return float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())


def float64_errors(exact: nn.Module, y: np.ndarray, ir: np.ndarray, ref: np.ndarray, got: np.ndarray) -> dict:
    """Max |error| of PyTorch float32 (``ref``) and of ONNX Runtime (``got``) against a float64 run (``exact``)."""
    with torch.no_grad():
        ref64 = exact(torch.from_numpy(y).double(), torch.from_numpy(ir).double())[0].numpy()
    return {'pytorch_float32': float(np.abs(ref - ref64).max()), 'onnxruntime': float(np.abs(got - ref64).max())}


def check_parity(core: FusionCore, float_path: Path, uint8_path: Path, samples) -> dict:
    """
    Compare ONNX Runtime with PyTorch on every sample, masks included; raise if a tolerance is exceeded.

    The float graph passes within FLOAT_TOL of PyTorch, or, beyond it, when its error against a
    float64 run is within ROUNDING_FACTOR of PyTorch float32's own (recorded per sample in the result).
    """
    float_sess = ort.InferenceSession(str(float_path), providers=['CPUExecutionProvider'])
    uint8_sess = ort.InferenceSession(str(uint8_path), providers=['CPUExecutionProvider'])
    core.eval()   # torch.onnx.export restores the wrapper's mode recursively; BatchNorm must use running stats
    kind = mask_kind(core)
    worst = {'float': 0.0, 'uint8': 0.0, 'mask_float': 0.0, 'mask_uint8': 0.0}
    tol = {'float': FLOAT_TOL, 'uint8': UINT8_TOL,
           'mask_float': CLASS_TOL if kind == 'classes' else FLOAT_TOL,
           'mask_uint8': CLASS_TOL if kind == 'classes' else UINT8_TOL}
    exact, against_float64 = None, {}
    for name, ir, vis in samples:
        y = bgr_to_ycrcb(to_unit(vis))[0].astype(np.float32)[None, None]
        irf = to_unit(ir)[None, None]
        with torch.no_grad():
            ref_f = [t.numpy() for t in FloatGraph(core)(torch.from_numpy(y), torch.from_numpy(irf))]
            ref_u = [t.numpy() for t in Uint8Graph(core)(torch.from_numpy(ir), torch.from_numpy(vis))]
        got_f = float_sess.run(None, {'visible_y': y, 'ir': irf})
        got_u = uint8_sess.run(None, {'ir': ir, 'visible_bgr': vis})
        diff = float(np.abs(got_f[0] - ref_f[0]).max())
        if diff > FLOAT_TOL:
            exact = exact or FloatGraph(copy.deepcopy(core).double())
            errors = against_float64[name] = float64_errors(exact, y, irf, ref_f[0], got_f[0])
            if errors['onnxruntime'] > ROUNDING_FACTOR * max(errors['pytorch_float32'], FLOAT_TOL):
                raise RuntimeError(
                    f'ONNX Runtime differs from PyTorch on sample {name}: float {diff:.3g}, and from a float64 run by '
                    f'{errors["onnxruntime"]:.3g}, more than {ROUNDING_FACTOR:g}x PyTorch float32\'s own '
                    f'{errors["pytorch_float32"]:.3g}: the graph computes something else, not a rounding')
        worst['float'] = max(worst['float'], diff)
        worst['uint8'] = max(worst['uint8'], float(np.abs(got_u[0].astype(int) - ref_u[0].astype(int)).max()))
        if kind:
            worst['mask_float'] = max(worst['mask_float'], _mask_mismatch(got_f[1], ref_f[1], kind))
            worst['mask_uint8'] = max(worst['mask_uint8'], _mask_mismatch(got_u[1], ref_u[1], kind))
        failed = [f'{k} {worst[k]:.3g} > {tol[k]}' for k in worst if k != 'float' and worst[k] > tol[k]]
        if failed:
            raise RuntimeError(f'ONNX Runtime differs from PyTorch on sample {name}: {"; ".join(failed)}')
    result = {'samples': [s[0] for s in samples], 'float_max_abs_diff': worst['float'],
              'uint8_max_abs_diff': int(worst['uint8']), 'float_tolerance': FLOAT_TOL, 'uint8_tolerance': UINT8_TOL}
    if against_float64:
        result['float64_reference'] = {
            'why': f'float diff above {FLOAT_TOL:g}: accepted as rounding because ONNX Runtime is within '
                   f'{ROUNDING_FACTOR:g}x of PyTorch float32\'s own max error against a float64 run of the network',
            'rounding_factor': ROUNDING_FACTOR, 'max_abs_error_by_sample': against_float64}
    if kind:
        result.update({'mask_kind': kind, 'mask_float_diff': worst['mask_float'],
                       'mask_uint8_diff': worst['mask_uint8'], 'mask_tolerance': tol['mask_uint8'],
                       'mask_diff_unit': 'fraction of pixels' if kind == 'classes' else 'max abs'})
    return result


def holdout_names(run_dir: Path) -> list[str]:
    """Return the held-out pair names a training run recorded, so the card says what was never trained on."""
    path = Path(run_dir) / 'val_names.txt'
    return path.read_text().split() if path.is_file() else []


def load_core(checkpoint: Path) -> tuple[FusionCore, dict]:
    """Rebuild the fusion net (and the segmenter a joint run saved) from a training checkpoint."""
    ckpt = load_checkpoint(checkpoint)
    return core_from_weights({**ckpt, 'method': ckpt['config']['method']}), ckpt


def save_weights(core: FusionCore, method: str, graph: Path) -> dict:
    """
    Return the card entry of the weights the torch backend runs: the graph itself, or a .pt beside it.

    The graph is enough when its initializers hold every network tensor by name and value (then
    nothing more is written: the weights ship once). Otherwise (a segmenter, whose BatchNorm the
    export folds) a weights-only ``<graph stem>.pt`` is written: only state dicts, the method name
    and class names, so ``torch.load(weights_only=True)`` reads it without unpickling code.
    """
    state = core.net.state_dict()
    if core.segmenter is None and weights_in_graph(graph, method, state):
        return {'graph_prefix': GRAPH_PREFIX}
    path = weights_path(graph)
    weights = {'method': method, 'model': state}
    if core.segmenter is not None:
        weights.update(segmenter=core.segmenter.state_dict(), classes=list(BOX_CLASSES))
    torch.save(weights, path)
    return {'file': path.name, 'sha256': sha256_of(path)}


def check_opset(opset: int) -> None:
    """Reject opsets below 17 (the first with LayerNormalization, which the ReFusion graphs use)."""
    if opset < 17:
        raise ValueError(f'opset must be >= 17, got {opset}')


def export(checkpoint: Path, out: Path, samples_dir: Path, opset: int = 17, metrics: Optional[Path] = None,
           sample_limit: int = 8, notes: Optional[str] = None) -> tuple[Path, Path]:
    """Export both graphs of a training checkpoint, validate them, and write their cards; returns the two paths."""
    check_opset(opset)      # before loading: a bad argument is named before a missing file
    core, ckpt = load_core(checkpoint)
    origin = {
        'training': {'command': ckpt.get('command') or training_command(ckpt),
                     'config': ckpt['config'], 'steps': ckpt['step'], 'checkpoint_sha256': sha256_of(checkpoint),
                     'best_val_loss': ckpt.get('best_val_loss'),
                     'runs': run_chain(ckpt['config'], Path(checkpoint).parent)},
        'data': {'sources': ckpt['config']['sources'], 'attribution': 'DATA.md',
                 'holdout': {'source': ckpt['config']['val_source'], 'count': ckpt['config']['val_count'],
                             'names': holdout_names(Path(checkpoint).parent)}},
    }
    if metrics:
        origin['metrics'] = json.loads(Path(metrics).read_text())
    if notes:
        origin['notes'] = notes
    return export_core(core, ckpt['config']['method'], out, samples_dir, origin,
                       'python -m training.deploy.export ' + ' '.join(sys.argv[1:]), opset, sample_limit)


def export_core(core: FusionCore, method: str, out: Path, samples_dir: Path, origin: dict, command: str,
                opset: int = 17, sample_limit: int = 8) -> tuple[Path, Path]:
    """
    Export both graphs of a FusionCore, validate them, and write their cards; returns the two paths.

    ``origin`` says where the weights came from (a training run, or a converted release) and goes
    into the card's provenance beside the export command, parity and torch weights.
    """
    check_opset(opset)
    kind = mask_kind(core)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    float_path = out.with_name(out.stem + '_float.onnx')
    ex_vis, ex_ir = torch.rand(1, 1, 64, 80), torch.rand(1, 1, 64, 80)
    f_in, f_out = float_specs(kind)
    nchw = {0: 'N', 2: 'H', 3: 'W'}
    export_graph(FloatGraph(core).eval(), (ex_vis, ex_ir), float_path, f_in, f_out,
                 {t.name: nchw for t in f_in + f_out}, opset)
    u_in, u_out = uint8_specs(kind)
    ex_ir8 = torch.randint(0, 256, (64, 80), dtype=torch.uint8)
    ex_bgr = torch.randint(0, 256, (64, 80, 3), dtype=torch.uint8)
    hw = {0: 'H', 1: 'W'}
    export_graph(Uint8Graph(core).eval(), (ex_ir8, ex_bgr), out, u_in, u_out, {t.name: hw for t in u_in + u_out}, opset)
    external = share_weights(float_path, out)      # before the parity check, so it checks what ships
    samples = load_samples(samples_dir, sample_limit)
    parity = check_parity(core, float_path, out, samples)
    provenance = {
        **origin,
        'parameters': sum(p.numel() for p in core.parameters()),
        'export': {'command': command,
                   'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                   'torch': torch.__version__, 'onnx': onnx.__version__, 'onnxruntime': ort.__version__},
        'parity': parity,
        'torch_weights': save_weights(core, method, out),
    }
    for path, graph, (inputs, outputs) in ((out, 'uint8', (u_in, u_out)), (float_path, 'float', (f_in, f_out))):
        card = ModelCard(method=method, version=__version__, graph=graph, onnx=path.name, sha256=sha256_of(path),
                         opset=opset, inputs=inputs, outputs=outputs, mask=card_mask(kind), provenance=provenance,
                         external_data=external if graph == 'float' else None)
        save_card(card, card_path_for(path))
    attach_fp16(out, samples)       # TensorRT's fp16 graph: validated and pinned in the card, derived on the target
    if core.segmenter is not None:
        export_segmenter(core, out.with_name(out.stem + '_segmenter.onnx'), provenance, opset)
    return out, float_path


def export_segmenter(core: FusionCore, out: Path, provenance: dict, opset: int) -> Path:
    """Write the joint run's segmenter as its own uint8 graph + card, checked against PyTorch on random luma."""
    graph = SegmenterGraph(core.segmenter).eval()
    inputs = (TensorSpec('luma', 'HW', 'uint8', (0.0, 255.0), 'luminance (gray) of any image: visible, IR, fused'),)
    outputs = (TensorSpec('classes', 'HW', 'uint8', (0.0, float(len(BOX_CLASSES) - 1)), 'class id per pixel'),)
    export_graph(graph, (torch.randint(0, 256, (64, 80), dtype=torch.uint8),), out, inputs, outputs,
                 {'luma': {0: 'H', 1: 'W'}, 'classes': {0: 'H', 1: 'W'}}, opset)
    luma = torch.randint(0, 256, (97, 131), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = graph(luma).numpy()
    got = ort.InferenceSession(str(out), providers=['CPUExecutionProvider']).run(None, {'luma': luma.numpy()})[0]
    mismatch = float(np.mean(got != ref))
    if mismatch > CLASS_TOL:
        raise RuntimeError(f'segmenter graph differs from PyTorch on {mismatch:.2%} of pixels (tol {CLASS_TOL:.1%})')
    card = ModelCard(method='segmenter', version=__version__, graph='segment', onnx=out.name, sha256=sha256_of(out),
                     opset=opset, inputs=inputs, outputs=outputs, mask=card_mask('classes'),
                     provenance={**provenance, 'parity': {'class_mismatch': mismatch, 'tolerance': CLASS_TOL}})
    save_card(card, card_path_for(out))
    return out


def training_command(ckpt: dict) -> str:
    """Return the command that produced a checkpoint: joint runs come from training.seafusion.semantic."""
    module = 'training.seafusion.semantic' if 'segmenter' in ckpt else 'training.common.train'
    return f'python -m {module} --config {ckpt.get("config_path")}'


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, type=Path)
    parser.add_argument('--out', required=True, type=Path, help='path of the uint8 graph, e.g. models/seafusion.onnx')
    parser.add_argument('--samples', type=Path, default=Path('tests/data/pairs'),
                        help='folder with ir/ and vi/ sample pairs for the parity check')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--metrics', type=Path, help='summary.json of an evaluation to copy into the card')
    parser.add_argument('--notes', help='free text for the card (e.g. how the run deviated from its config)')
    args = parser.parse_args(argv)
    uint8_path, float_path = export(args.checkpoint, args.out, args.samples, args.opset, args.metrics,
                                    notes=args.notes)
    written = [uint8_path, float_path]
    if (load_card(uint8_path).mask or {}).get('kind') == 'classes':     # a joint run also wrote its segmenter
        written.append(uint8_path.with_name(uint8_path.stem + '_segmenter.onnx'))
    for path in written:
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {card_path_for(path).name}')


if __name__ == '__main__':
    main()
