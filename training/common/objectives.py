"""
What each method is trained to minimise, behind one interface so train.py has a single loop.

An Objective says which module the optimiser steps through (SeAFusion trains on
pairs, SGFusion on single images) and how its outputs become a loss. The
module returned by ``train_module`` is what DistributedDataParallel wraps, so
gradients are synchronised whatever path the method trains through.
"""

from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.sgfusion import MULTIPLE
from training.coconet import objective as coconet_objective
from training.realtime import distill
from training.common.config import TrainConfig
from training.common.data import IGNORE
from training.common.losses import content_loss, target_losses

Loss = tuple[torch.Tensor, dict[str, float]]


class SingleImageTrainer(nn.Module):
    """
    SGFusion's training path: every visible and IR crop is its own image.

    The two planes of a pair share its mask (they are registered). Sides are
    cropped down to a multiple of 8 so full-size validation images pass too.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h, w = vis.shape[-2] // MULTIPLE * MULTIPLE, vis.shape[-1] // MULTIPLE * MULTIPLE
        images = torch.cat([vis, ir])[..., :h, :w]
        reconstruction, saliency = self.model.autoencode(images)
        return images, reconstruction, saliency


class FusedDecoderTrainer(nn.Module):
    """
    SGFusion fine-tuning of the reconstruction decoder on fused features (our addition to the design).

    Trained on reconstruction alone, the decoder has never seen the softmax-weighted mix of two
    sources' features and decodes it with lost contrast (see the SGFusion card). This stage freezes the
    encoder and the saliency decoder, so the saliency-guided fusion rule and the saliency output stay
    exactly those of the first stage, and teaches only the reconstruction decoder to decode fused
    features, with SeAFusion's content loss as the target.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        for part in (model.encoder, model.saliency):
            for p in part.parameters():
                p.requires_grad_(False)

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.model(vis, ir)[0]


def seafusion_loss(outputs: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor, masks: torch.Tensor,
                   config: TrainConfig) -> Loss:
    """Compute the content loss of methods.md; masks are not used."""
    return content_loss(outputs, vis, ir, config.texture_weight)


def seafusion_target_loss(outputs: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor, masks: torch.Tensor,
                          config: TrainConfig) -> Loss:
    """Content loss plus the target terms of training.common.losses.target_losses on labelled boxes (issue 12)."""
    content, parts = content_loss(outputs, vis, ir, config.texture_weight)
    follow, keep = target_losses(outputs, vis, ir, masks, config.target_ring, IGNORE)
    total = content + config.target_follow_weight * follow + config.target_keep_weight * keep
    return total, {**parts, 'l_follow': float(follow.detach()), 'l_keep': float(keep.detach())}


def sgfusion_loss(outputs: tuple[torch.Tensor, ...], vis: torch.Tensor, ir: torch.Tensor, masks: torch.Tensor,
                  config: TrainConfig) -> Loss:
    """Compute MAE reconstruction on every image plus BCE(saliency, mask > 0) on pixels that have a mask."""
    images, reconstruction, saliency = outputs
    h, w = images.shape[-2:]
    masks = torch.cat([masks, masks])[:, None, :h, :w]
    l_rec = (reconstruction - images).abs().mean()
    known = masks != IGNORE
    if known.any():
        target = (masks > 0).to(saliency.dtype)
        l_bce = F.binary_cross_entropy(saliency[known], target[known])
    else:
        l_bce = saliency.sum() * 0.0   # keeps the graph (and DDP's gradient buckets) identical
    return l_rec + config.saliency_weight * l_bce, {'l_rec': float(l_rec.detach()), 'l_bce': float(l_bce.detach())}


@dataclass(frozen=True)
class Objective:
    """The module to step through and the loss of its outputs."""

    train_module: Callable[[nn.Module], nn.Module]
    loss: Callable[..., Loss]


# An entry is an Objective, or a function of the config that builds one (CoCoNet's read the VGG file it names).
OBJECTIVES: dict[str, Union[Objective, Callable[[TrainConfig], Objective]]] = {
    'seafusion': Objective(lambda model: model, seafusion_loss),
    'seafusion_target': Objective(lambda model: model, seafusion_target_loss),
    'sgfusion': Objective(SingleImageTrainer, sgfusion_loss),
    'sgfusion_fused_decoder': Objective(FusedDecoderTrainer, seafusion_loss),
    'coconet': lambda config: Objective(*coconet_objective.stage1(config)),
    'coconet_contrastive': lambda config: Objective(*coconet_objective.stage2(config)),
    'realtime_distill': lambda config: Objective(*distill.objective_parts(config)),
}


def objective_for(config: TrainConfig) -> Objective:
    """Look up the config's objective (default: the method's own), naming the known ones on a typo."""
    name = config.objective or config.method
    try:
        entry = OBJECTIVES[name]
    except KeyError:
        raise ValueError(f'no objective {name!r}; known: {", ".join(sorted(OBJECTIVES))}') from None
    return entry if isinstance(entry, Objective) else entry(config)


def fused_luma(model: nn.Module, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Fused Y of any fusion network (SGFusion also returns its saliency map)."""
    out = model(vis, ir)
    return out[0] if isinstance(out, tuple) else out
