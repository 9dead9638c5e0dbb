"""
CoCoNet's two objectives for training.common.train: stage 1 (``coconet``) and stage 2 (``coconet_contrastive``).

Both read the VGG-19 file named by ``vgg_weights`` (a torchvision-format state dict: ImageNet weights a
user supplies, or the gray extractor training.coconet.vgg trains here). A fresh run loads the network's
frozen branch from it before training (a run from ``init_from`` keeps the branch it starts with), and
stage 2 builds its contrastive feature extractor from it. No file where one is needed is an error:
random VGG features would be trained against as if they meant something.

The objectives are built per config (``stage1`` / ``stage2`` return the train-module and loss
callables of training.common.objectives.Objective) because they depend on that file.
"""

from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from fusion_ros.networks.coconet import BRANCH_END, gray_vgg_state_dict
from training.coconet.losses import ContrastFeatures, coupled_contrastive_loss, stage1_loss
from training.common.config import TrainConfig
from training.common.data import IGNORE

Loss = tuple[torch.Tensor, dict[str, float]]


@lru_cache(maxsize=2)
def read_vgg_file(path: str) -> dict[str, torch.Tensor]:
    """Read a VGG-19 state dict once per process (validation rebuilds the train module each time)."""
    if not path:
        raise ValueError('CoCoNet needs VGG-19 weights: set vgg_weights (or --vgg-weights FILE) to a torchvision-'
                         'format state dict, or train the local extractor: python -m training.coconet.vgg '
                         '--config training/configs/coconet_vgg.yaml')
    if not Path(path).is_file():
        raise FileNotFoundError(f'vgg_weights file not found: {path}')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or not any(k.startswith('features.') for k in state):
        raise ValueError(f'{path} is not a torchvision-format VGG-19 state dict (no features.N.* keys)')
    return state


def load_branch(model: nn.Module, path: str) -> nn.Module:
    """Put the file's VGG-19 (to relu3_4) into the network's frozen branch, unless it already holds it."""
    state = gray_vgg_state_dict(read_vgg_file(path), BRANCH_END)
    current = model.vgg.features.state_dict()
    if not all(torch.equal(current[k], v) for k, v in state.items()):
        model.vgg.features.load_state_dict(state)
    return model


def coconet_stage1_loss(outputs: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor, masks: torch.Tensor,
                        config: TrainConfig) -> Loss:
    """Stage-1 loss of methods.md (data-driven SSIM + MSE weights); masks are not used."""
    return stage1_loss(outputs, vis, ir)


def branch_loader(config: TrainConfig) -> Callable[[nn.Module], nn.Module]:
    """
    Return the train-module hook that puts the frozen VGG-19 branch in place.

    A run that starts from a trained CoCoNet (``init_from``, e.g. the shipped models/coconet.onnx)
    keeps the branch that came with those weights: its U-Net learned to read exactly those
    features, and a VGG file trained again here is not bit-identical to the one it was trained
    with. A fresh run takes the branch from ``vgg_weights``, which it then needs.
    """
    if config.init_from:
        return lambda model: model
    read_vgg_file(config.vgg_weights)      # fail before any data is loaded
    return lambda model: load_branch(model, config.vgg_weights)


def stage1(config: TrainConfig) -> tuple[Callable[[nn.Module], nn.Module], Callable[..., Loss]]:
    """Stage 1: the stage-1 loss, which reads no VGG features beyond the network's own branch."""
    return branch_loader(config), coconet_stage1_loss


def stage2(config: TrainConfig) -> tuple[Callable[[nn.Module], nn.Module], Callable[..., Loss]]:
    """
    Stage 2: stage-1 loss + ``contrast_weight`` * coupled contrastive loss on box-derived foreground masks.

    The contrastive extractor (to relu5_1) always comes from ``vgg_weights``; the network's branch as
    branch_loader says.

    The contrastive term is computed on training crops only. Validation (run without autograd on full
    held-out frames) reports the stage-1 loss: ten VGG-19 passes to relu5_1 per 640x480 frame would cost
    about a minute each on this CPU, and it keeps the validation losses of both stages comparable.
    """
    phi = ContrastFeatures()
    phi.features.load_state_dict(gray_vgg_state_dict(read_vgg_file(config.vgg_weights), len(phi.features)))
    load = branch_loader(config)

    def loss(outputs: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor, masks: torch.Tensor,
             config: TrainConfig) -> Loss:
        base, parts = stage1_loss(outputs, vis, ir)
        if not torch.is_grad_enabled():
            return base, {**parts, 'l_fg': 0.0, 'l_bg': 0.0}
        phi.to(outputs.device)
        contrast, contrast_parts = coupled_contrastive_loss(phi, outputs, vis, ir, masks, IGNORE)
        return base + config.contrast_weight * contrast, {**parts, **contrast_parts}

    return load, loss
