"""
The graphs that are exported and that the torch backend runs: a fusion network (plus its mask head) wrapped for I/O.

``FusionCore`` is (visible_y, ir) -> (fused_y[, mask]); ``FloatGraph`` and ``Uint8Graph`` give it
the two exported interfaces (float planes, or uint8 images with the YCrCb maths inside the graph);
``SegmenterGraph`` is the joint run's segmenter alone. They live in the runtime package because
the torch backend must rebuild exactly what training.deploy.export wrote, from the weights alone.
"""

from typing import Optional

import torch
from torch import nn

from fusion_ros.core.color import B_FROM_CB, CB_SCALE, CR_SCALE, G_FROM_CB, G_FROM_CR, R_FROM_CR, Y_WEIGHTS_RGB
from fusion_ros.networks.registry import build_model
from fusion_ros.networks.segmenter import Segmenter
from fusion_ros.networks.sgfusion import SGFusion


class FusionCore(nn.Module):
    """
    A fusion network plus whatever gives its mask: (visible_y, ir) -> (fused_y[, mask]).

    The mask is SGFusion's saliency (float in [0, 1]) or the class ids (int64) of a
    segmenter applied to the fused luminance (SeAFusion trained with its semantic loss).
    """

    def __init__(self, net: nn.Module, segmenter: Optional[nn.Module] = None):
        super().__init__()
        self.net = net
        self.segmenter = segmenter

    def forward(self, visible_y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(visible_y, ir)
        if isinstance(out, tuple):
            return out
        if self.segmenter is not None:
            return out, self.segmenter(out)[0].argmax(1, keepdim=True)
        return (out,)


def mask_kind(core: FusionCore) -> Optional[str]:
    """Return 'saliency', 'classes' or None: what the core's second output holds."""
    if core.segmenter is not None:
        return 'classes'
    return 'saliency' if isinstance(core.net, SGFusion) else None


def class_ids_to_uint8(ids: torch.Tensor) -> torch.Tensor:
    """
    Integer class ids (ArgMax, INT64) as uint8, cast through float.

    TensorRT documents Cast to UINT8 only from FLOAT or HALF, so the exported graph must not
    cast INT64 to UINT8 directly; ids below 256 are exact in float.
    """
    return ids.to(torch.float32).to(torch.uint8)


def _mask_to_uint8(mask: torch.Tensor) -> torch.Tensor:
    """Saliency becomes 0..255, class ids stay ids; the Cast is the graph's last op (TensorRT's uint8 rule)."""
    if mask.is_floating_point():
        return torch.round(mask.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return class_ids_to_uint8(mask)


class FloatGraph(nn.Module):
    """(visible_y, ir) -> fused_y [, saliency float | classes uint8], all (N, 1, H, W)."""

    def __init__(self, core: FusionCore):
        super().__init__()
        self.core = core

    def forward(self, visible_y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.core(visible_y, ir)
        if len(out) == 2 and not out[1].is_floating_point():
            return out[0], class_ids_to_uint8(out[1])
        return out


class Uint8Graph(nn.Module):
    """
    (ir (H, W) uint8, visible_bgr (H, W, 3) uint8) -> fused_bgr (H, W, 3) uint8 [, mask (H, W) uint8].

    Same maths as fusion_ros.core.color, so the numpy pipeline is its reference.
    """

    def __init__(self, core: FusionCore):
        super().__init__()
        self.core = core

    def forward(self, ir: torch.Tensor, visible_bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        bgr = visible_bgr.to(torch.float32) / 255.0
        b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
        y = Y_WEIGHTS_RGB[0] * r + Y_WEIGHTS_RGB[1] * g + Y_WEIGHTS_RGB[2] * b
        dr, db = CR_SCALE * (r - y), CB_SCALE * (b - y)  # Cr - 0.5 and Cb - 0.5
        out = self.core(y[None, None], (ir.to(torch.float32) / 255.0)[None, None])
        fy = out[0][0, 0]
        fused = torch.stack([fy + B_FROM_CB * db, fy - G_FROM_CR * dr - G_FROM_CB * db, fy + R_FROM_CR * dr], dim=-1)
        fused = torch.round(fused.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        return (fused, _mask_to_uint8(out[1][0, 0])) if len(out) == 2 else (fused,)


class SegmenterGraph(nn.Module):
    """luma (H, W) uint8 -> classes (H, W) uint8: the segmenter alone, for task-driven evaluation."""

    def __init__(self, segmenter: nn.Module):
        super().__init__()
        self.segmenter = segmenter

    def forward(self, luma: torch.Tensor) -> torch.Tensor:
        logits = self.segmenter((luma.to(torch.float32) / 255.0)[None, None])[0]
        return class_ids_to_uint8(logits.argmax(1)[0])


def core_from_weights(weights: dict) -> FusionCore:
    """Build a frozen, eval-mode FusionCore from {'method', 'model'[, 'segmenter', 'classes']} state dicts."""
    net = build_model(weights['method'])
    net.load_state_dict(weights['model'])
    segmenter = None
    if weights.get('segmenter') is not None:
        segmenter = Segmenter(len(weights['classes']))
        segmenter.load_state_dict(weights['segmenter'])
    core = FusionCore(net, segmenter).eval().float()
    for p in core.parameters():
        p.requires_grad_(False)
    return core
