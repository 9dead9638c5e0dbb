"""Fusion losses of methods.md."""

import torch

from training.models.layers import sobel_magnitude


def content_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor,
                 texture_weight: float = 10.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute the SeAFusion content loss L_int + w * L_texture and its two terms for logging."""
    l_int = (fused - torch.maximum(vis_y, ir)).abs().mean()
    target_grad = torch.maximum(sobel_magnitude(vis_y), sobel_magnitude(ir))
    l_tex = (sobel_magnitude(fused) - target_grad).abs().mean()
    total = l_int + texture_weight * l_tex
    return total, {'l_int': float(l_int.detach()), 'l_texture': float(l_tex.detach())}
