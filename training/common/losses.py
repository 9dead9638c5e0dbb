"""Fusion and segmentation losses of methods.md."""

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.layers import sobel_magnitude


def content_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor,
                 texture_weight: float = 10.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute the SeAFusion content loss L_int + w * L_texture and its two terms for logging."""
    l_int = (fused - torch.maximum(vis_y, ir)).abs().mean()
    target_grad = torch.maximum(sobel_magnitude(vis_y), sobel_magnitude(ir))
    l_tex = (sobel_magnitude(fused) - target_grad).abs().mean()
    total = l_int + texture_weight * l_tex
    return total, {'l_int': float(l_int.detach()), 'l_texture': float(l_tex.detach())}


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                       threshold: float = 0.7, min_fraction: float = 1 / 16,
                       weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Online hard example mining CE as in SeAFusion: mean loss of pixels with p(true) < threshold.

    At least ``min_fraction`` of the labelled pixels are kept (the hardest), so an
    easy batch still trains. ``weight`` scales each class's pixel losses: box-derived masks
    are about 90 % background, and without it the segmenter settles on all-background.
    Returns a zero that keeps the graph when no pixel is labelled.
    """
    loss = F.cross_entropy(logits, target.long(), weight=weight, ignore_index=ignore_index,
                           reduction='none').flatten()
    loss = loss[(target.flatten() != ignore_index)]
    if loss.numel() == 0:
        return logits.sum() * 0.0
    hard = loss[loss > -torch.log(torch.tensor(threshold))]
    n_min = max(int(loss.numel() * min_fraction), 1)
    if hard.numel() < n_min:
        hard = torch.topk(loss, n_min).values
    return hard.mean()


def semantic_loss(segmenter: nn.Module, fused_y: torch.Tensor, masks: torch.Tensor,
                  weight: Optional[torch.Tensor] = None, ohem: bool = True) -> torch.Tensor:
    """
    Compute L_sem = CE(main) + 0.1 * CE(aux) with OHEM as in methods.md, or plain (class-weighted) CE.

    Plain weighted CE exists because, on box-derived masks and a segmenter trained from scratch for a
    few hundred steps, OHEM settled on all-background in our runs (see the seafusion_seg card).
    """
    main, aux = segmenter(fused_y)
    if ohem:
        return ohem_cross_entropy(main, masks, weight=weight) + 0.1 * ohem_cross_entropy(aux, masks, weight=weight)
    target = masks.long()
    if not (target != 255).any():
        return main.sum() * 0.0
    return (F.cross_entropy(main, target, weight=weight, ignore_index=255)
            + 0.1 * F.cross_entropy(aux, target, weight=weight, ignore_index=255))


def region_contrast(image: torch.Tensor, inside: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """Signed mean(inside) - mean(ring) per sample of (N, 1, H, W) planes; 0 where a region is empty."""
    def mean(region: torch.Tensor) -> torch.Tensor:
        return (image * region).sum((1, 2, 3)) / region.sum((1, 2, 3)).clamp_min(1.0)
    return mean(inside) - mean(ring)


def target_losses(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor, masks: torch.Tensor, ring: int,
                  ignore_index: int = 255, min_contrast: float = 2.0 / 255) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Two terms that keep labelled targets as distinct as in the better source (ours, issue 12).

    The content loss asks for max(visible, IR) everywhere, which in a lit scene raises a target's
    surroundings to the bright visible background and so flattens a warm person into it. Here the
    target pixels (mask class > 0) and a ring of ``ring`` pixels around them define, per crop, the
    signed contrast of each source; the source with the larger |contrast| is the better one.

    * follow: mean |F - better source| over target + ring, so the network copies the source that
      shows the target, with the surroundings it is seen against;
    * keep: mean over crops of max(0, 1 - retention), retention = the fused contrast along the better
      source's sign / its |contrast|: only a loss of contrast is penalised, never a gain.

    Crops without a target, or whose sources both differ by less than ``min_contrast``, add nothing.
    Returns (follow, keep); both keep the graph when nothing qualifies.
    """
    inside = ((masks > 0) & (masks != ignore_index)).unsqueeze(1).to(fused.dtype)
    grown = F.max_pool2d(inside, 2 * ring + 1, stride=1, padding=ring)
    around = grown - inside
    c_vis, c_ir = region_contrast(vis_y, inside, around), region_contrast(ir, inside, around)
    use_ir = c_ir.abs() >= c_vis.abs()
    best = torch.where(use_ir, c_ir, c_vis)
    valid = ((inside.sum((1, 2, 3)) > 0) & (around.sum((1, 2, 3)) > 0) & (best.abs() >= min_contrast)).to(fused.dtype)
    chosen = torch.where(use_ir[:, None, None, None], ir, vis_y)
    region = grown * valid[:, None, None, None]
    follow = ((fused - chosen).abs() * region).sum() / region.sum().clamp_min(1.0)
    retention = torch.sign(best) * region_contrast(fused, inside, around) / best.abs().clamp_min(min_contrast)
    keep = (torch.relu(1.0 - retention) * valid).sum() / valid.sum().clamp_min(1.0)
    return follow, keep
