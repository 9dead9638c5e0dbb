"""
Export a trained checkpoint to ONNX, validate it against PyTorch, and write its model card.

    python -m training.export --checkpoint runs/seafusion/best.pt --out models/seafusion.onnx \
        --samples tests/data/pairs [--metrics demo_out/summary.json]

Writes two graphs (methods.md / design.md):

* ``<out>``: end-to-end uint8, ``ir`` (H, W) + ``visible_bgr`` (H, W, 3) -> ``fused_bgr``
  (H, W, 3); normalisation and YCrCb maths run inside the graph.
* ``<out stem>_float.onnx``: ``visible_y``, ``ir`` (N, 1, H, W) float [0, 1] -> ``fused_y``.

Both have dynamic H and W. Each is checked with onnx.checker, then run with
ONNX Runtime on real sample pairs and compared to PyTorch: the float graph to
1e-5, the uint8 graph to one grey level. A failed check raises and leaves no card.
"""

import argparse
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
from fusion_ros.color import (B_FROM_CB, CB_SCALE, CR_SCALE, G_FROM_CB, G_FROM_CR, R_FROM_CR, Y_WEIGHTS_RGB,
                              bgr_to_ycrcb,
                              to_unit)
from fusion_ros.imageio import pair_folders, read_ir, read_visible
from fusion_ros.model_card import ModelCard, TensorSpec, card_path_for, save_card, sha256_of
from fusion_ros.pipeline import visible_to_bgr
from fusion_ros.registration import make_registration, register_ir
from training.checkpoint import load_checkpoint
from training.models.registry import build_model

FLOAT_TOL = 1e-5
UINT8_TOL = 1


class FloatGraph(nn.Module):
    """(visible_y, ir) -> fused_y, all (N, 1, H, W) float in [0, 1]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, visible_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.net(visible_y, ir)


class Uint8Graph(nn.Module):
    """
    (ir (H, W) uint8, visible_bgr (H, W, 3) uint8) -> fused_bgr (H, W, 3) uint8.

    Same maths as fusion_ros.color, so the numpy pipeline is its reference.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ir: torch.Tensor, visible_bgr: torch.Tensor) -> torch.Tensor:
        bgr = visible_bgr.to(torch.float32) / 255.0
        b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
        y = Y_WEIGHTS_RGB[0] * r + Y_WEIGHTS_RGB[1] * g + Y_WEIGHTS_RGB[2] * b
        dr, db = CR_SCALE * (r - y), CB_SCALE * (b - y)  # Cr - 0.5 and Cb - 0.5
        fy = self.net(y[None, None], (ir.to(torch.float32) / 255.0)[None, None])[0, 0]
        out = torch.stack([fy + B_FROM_CB * db, fy - G_FROM_CR * dr - G_FROM_CB * db, fy + R_FROM_CR * dr], dim=-1)
        return torch.round(out.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def float_specs() -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Tensor specs of the float graph."""
    unit = (0.0, 1.0)
    return ((TensorSpec('visible_y', 'NCHW', 'float32', unit, 'visible luminance (YCrCb Y)'),
             TensorSpec('ir', 'NCHW', 'float32', unit, 'infrared intensity, registered to the visible frame')),
            (TensorSpec('fused_y', 'NCHW', 'float32', unit, 'fused luminance; take chroma from the visible image'),))


def uint8_specs() -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Tensor specs of the end-to-end uint8 graph."""
    byte = (0.0, 255.0)
    return ((TensorSpec('ir', 'HW', 'uint8', byte, 'infrared, registered to the visible frame'),
             TensorSpec('visible_bgr', 'HWC', 'uint8', byte, 'visible image, BGR (gray: replicate to 3 planes)')),
            (TensorSpec('fused_bgr', 'HWC', 'uint8', byte, 'fused image, BGR, visible chroma'),))


def export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, inputs, outputs,
                 dynamic_axes: dict, opset: int) -> None:
    """
    torch.onnx.export plus onnx.checker.

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


def load_samples(folder: Path, limit: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Real sample pairs (name, ir uint8 registered, visible BGR uint8) for parity checks."""
    pairing = pair_folders(Path(folder) / 'ir', Path(folder) / 'vi')
    if not pairing.pairs:
        raise FileNotFoundError(f'no sample pairs under {folder}/ir and {folder}/vi')
    resize = make_registration('resize')
    samples = []
    for ir_path, vis_path in pairing.pairs[:limit]:
        vis = visible_to_bgr(read_visible(vis_path))
        samples.append((ir_path.stem, register_ir(read_ir(ir_path), vis.shape[:2], resize), vis))
    return samples


def check_parity(net: nn.Module, float_path: Path, uint8_path: Path, samples) -> dict:
    """Compare ONNX Runtime with PyTorch on every sample; raise if a tolerance is exceeded."""
    float_sess = ort.InferenceSession(str(float_path), providers=['CPUExecutionProvider'])
    uint8_sess = ort.InferenceSession(str(uint8_path), providers=['CPUExecutionProvider'])
    worst_float, worst_uint8 = 0.0, 0
    for name, ir, vis in samples:
        y = bgr_to_ycrcb(to_unit(vis))[0].astype(np.float32)[None, None]
        irf = to_unit(ir)[None, None]
        with torch.no_grad():
            ref_y = net(torch.from_numpy(y), torch.from_numpy(irf)).numpy()
            ref_bgr = Uint8Graph(net)(torch.from_numpy(ir), torch.from_numpy(vis)).numpy()
        got_y = float_sess.run(None, {'visible_y': y, 'ir': irf})[0]
        got_bgr = uint8_sess.run(None, {'ir': ir, 'visible_bgr': vis})[0]
        worst_float = max(worst_float, float(np.abs(got_y - ref_y).max()))
        worst_uint8 = max(worst_uint8, int(np.abs(got_bgr.astype(int) - ref_bgr.astype(int)).max()))
        if worst_float > FLOAT_TOL or worst_uint8 > UINT8_TOL:
            raise RuntimeError(f'ONNX Runtime differs from PyTorch on sample {name}: float max |diff| '
                               f'{worst_float:.2e} (tol {FLOAT_TOL}), uint8 max |diff| {worst_uint8} (tol {UINT8_TOL})')
    return {'samples': [s[0] for s in samples], 'float_max_abs_diff': worst_float,
            'uint8_max_abs_diff': worst_uint8, 'float_tolerance': FLOAT_TOL, 'uint8_tolerance': UINT8_TOL}


def holdout_names(run_dir: Path) -> list[str]:
    """Return the held-out pair names a training run recorded, so the card says what was never trained on."""
    path = Path(run_dir) / 'val_names.txt'
    return path.read_text().split() if path.is_file() else []


def export(checkpoint: Path, out: Path, samples_dir: Path, opset: int = 17, metrics: Optional[Path] = None,
           sample_limit: int = 8, notes: Optional[str] = None) -> tuple[Path, Path]:
    """Export both graphs of a checkpoint, validate them, and write their cards; returns the two paths."""
    if opset < 17:
        raise ValueError(f'opset must be >= 17, got {opset}')
    ckpt = load_checkpoint(checkpoint)
    method = ckpt['config']['method']
    net = build_model(method)
    net.load_state_dict(ckpt['model'])
    net.eval().float()
    for p in net.parameters():
        p.requires_grad_(False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    float_path = out.with_name(out.stem + '_float.onnx')
    ex_vis, ex_ir = torch.rand(1, 1, 64, 80), torch.rand(1, 1, 64, 80)
    f_in, f_out = float_specs()
    nchw = {0: 'N', 2: 'H', 3: 'W'}
    export_graph(FloatGraph(net), (ex_vis, ex_ir), float_path, f_in, f_out,
                 {'visible_y': nchw, 'ir': nchw, 'fused_y': nchw}, opset)
    u_in, u_out = uint8_specs()
    ex_ir8 = torch.randint(0, 256, (64, 80), dtype=torch.uint8)
    ex_bgr = torch.randint(0, 256, (64, 80, 3), dtype=torch.uint8)
    hw = {0: 'H', 1: 'W'}
    export_graph(Uint8Graph(net), (ex_ir8, ex_bgr), out, u_in, u_out,
                 {'ir': hw, 'visible_bgr': hw, 'fused_bgr': hw}, opset)
    parity = check_parity(net, float_path, out, load_samples(samples_dir, sample_limit))
    provenance = {
        'training': {'command': ckpt.get('command') or f'python -m training.train --config {ckpt.get("config_path")}',
                     'config': ckpt['config'], 'steps': ckpt['step'], 'checkpoint_sha256': sha256_of(checkpoint),
                     'best_val_loss': ckpt.get('best_val_loss')},
        'data': {'sources': ckpt['config']['sources'], 'attribution': 'DATA.md',
                 'holdout': {'source': ckpt['config']['val_source'], 'count': ckpt['config']['val_count'],
                             'names': holdout_names(Path(checkpoint).parent)}},
        'parameters': sum(p.numel() for p in net.parameters()),
        'export': {'command': 'python -m training.export ' + ' '.join(sys.argv[1:]),
                   'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                   'torch': torch.__version__, 'onnx': onnx.__version__, 'onnxruntime': ort.__version__},
        'parity': parity,
    }
    if metrics:
        provenance['metrics'] = json.loads(Path(metrics).read_text())
    if notes:
        provenance['notes'] = notes
    for path, graph, (inputs, outputs) in ((out, 'uint8', (u_in, u_out)), (float_path, 'float', (f_in, f_out))):
        card = ModelCard(method=method, version=__version__, graph=graph, onnx=path.name, sha256=sha256_of(path),
                         opset=opset, inputs=inputs, outputs=outputs, provenance=provenance)
        save_card(card, card_path_for(path))
    return out, float_path


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
    for path in export(args.checkpoint, args.out, args.samples, args.opset, args.metrics, notes=args.notes):
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {card_path_for(path).name}')


if __name__ == '__main__':
    main()
