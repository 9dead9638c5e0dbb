"""
Train the gray VGG-19 feature extractor that CoCoNet uses when no ImageNet VGG-19 file is given.

    python -m training.coconet.vgg --config training/configs/coconet_vgg.yaml [--resume]

Why: CoCoNet reads a frozen VGG-19 twice, in its attention branch (relu1_2, 2_2, 3_4 after an extra
max-pool) and in the contrastive loss (relu1_1, 2_1, 3_1, 4_1, 5_1). ImageNet weights cannot be
downloaded here, and random VGG weights would make both meaningless. So VGG-19 ``features[:30]``
(single-channel first conv) is trained on the training pairs' visible and IR crops, in [-1, 1] as
CoCoNet feeds them, by reconstruction: from every tap either path reads, a linear decoder (1x1 conv
and pixel shuffle) must give back the input patch. Each tap then keeps the local image content at
its depth and scale, which is what the attention branch mixes and what the contrastive L1 distances
compare. It is not ImageNet's semantics; the model card says so.

Writes into ``out_dir``: ``vgg19_gray.pt`` (torchvision-format state dict, ``features.N.*``, gray first
conv; what ``vgg_weights`` of the CoCoNet configs names), ``last.pt`` (resumable), ``train_log.csv`` and
``val_log.csv`` (reconstruction error on centre crops of held-out pairs).
The held-out pairs of ``val_source`` are left out exactly as in training.common.train.
"""

from pathlib import Path
import time
from typing import Optional

import numpy as np
import torch
from torch import nn

from fusion_ros.networks.coconet import BRANCH_TAPS, gray_vgg19_features
from training.common.checkpoint import load_checkpoint, save_checkpoint
from training.common.config import config_to_dict, parse_command_line, TrainConfig
from training.common.data import CropSampler, load_sources, split_holdout
from training.common.train import append_csv, cosine_lr

VGG_END = 30                                        # features[:30] ends at relu5_1
PLAIN_TAPS = {1: 1, 6: 2, 11: 4, 20: 8, 29: 16}     # tap index -> stride: relu1_1, 2_1, 3_1, 4_1, 5_1
BRANCH_STRIDES = dict(zip(BRANCH_TAPS, (2, 4, 8)))  # relu1_2, 2_2, 3_4 after the extra pool


def tap_channels(index: int) -> int:
    """Channels of the ReLU at ``index`` of VGG-19 features."""
    return [m.out_channels for m in gray_vgg19_features(index + 1) if isinstance(m, nn.Conv2d)][-1]


def linear_decoder(channels: int, stride: int) -> nn.Module:
    """1x1 conv to stride^2 channels and pixel shuffle: each feature vector must encode its patch linearly."""
    return nn.Sequential(nn.Conv2d(channels, stride * stride, 1), nn.PixelShuffle(stride))


class VGGAutoencoder(nn.Module):
    """Gray VGG-19 features[:30] plus one linear decoder per tap of the plain and the branch path."""

    def __init__(self):
        super().__init__()
        self.features = gray_vgg19_features(VGG_END)
        self.plain = nn.ModuleDict({str(i): linear_decoder(tap_channels(i), s) for i, s in PLAIN_TAPS.items()})
        self.branch = nn.ModuleDict({str(i): linear_decoder(tap_channels(i), s) for i, s in BRANCH_STRIDES.items()})
        self.pool = nn.MaxPool2d(2, 2)
        for m in self.features:
            if isinstance(m, nn.Conv2d):   # torchvision's VGG init: a 16-conv plain ReLU stack trains from it
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Reconstructions of x (N, 1, H, W), H and W multiples of 16: plain-path taps, then branch-path taps."""
        out, y = [], x
        for index, layer in enumerate(self.features):
            y = layer(y)
            if index in PLAIN_TAPS:
                out.append(self.plain[str(index)](y))
        y = self.pool(self.features[:2](x))
        for index in range(2, max(BRANCH_STRIDES) + 1):
            y = self.features[index](y)
            if index in BRANCH_STRIDES:
                out.append(self.branch[str(index)](y))
        return out


def reconstruction_loss(model: VGGAutoencoder, images: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Mean over taps of the L1 reconstruction error; also each tap's error for the log."""
    errors = [(r - images).abs().mean() for r in model(images)]
    return torch.stack(errors).mean(), [float(e.detach()) for e in errors]


def feature_state_dict(model: VGGAutoencoder) -> dict[str, torch.Tensor]:
    """Return the extractor in torchvision's key layout, as ``vgg_weights`` files are read."""
    return {f'features.{k}': v.detach().clone() for k, v in model.features.state_dict().items()}


def holdout_crops(pairs, crop: int) -> torch.Tensor:
    """Centre crops of held-out pairs (both planes), [-1, 1], for a fixed validation number."""
    planes = []
    for p in pairs:
        h, w = p.ir.shape
        y, x = (h - crop) // 2, (w - crop) // 2
        planes += [p.vis_y[y:y + crop, x:x + crop], p.ir[y:y + crop, x:x + crop]]
    return torch.from_numpy(np.stack(planes)[:, None]) * 2 - 1


def train_extractor(config: TrainConfig, resume: bool = False, config_path: Optional[str] = None) -> Path:
    """Run (or continue) the reconstruction training; returns the path of the gray VGG-19 state dict."""
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.crop % 16:
        raise ValueError(f'crop must be a multiple of 16 (relu5_1 is at 1/16), got {config.crop}')
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = VGGAutoencoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train_pairs, val_pairs = split_holdout(load_sources(config.sources), config.val_source, config.val_count,
                                           config.seed)
    sampler = CropSampler(train_pairs, config.crop, config.seed)
    val_images = holdout_crops(val_pairs[:config.val_eval_count], min(128, *val_pairs[0].ir.shape) // 16 * 16)
    step, last = 0, out / 'last.pt'
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt['model'])
        optimizer.load_state_dict(ckpt['optimizer'])
        step = ckpt['step']
        sampler.rng.bit_generator.state = ckpt['sampler_rng']
        torch.set_rng_state(ckpt['torch_rng'])
    print(f'{len(train_pairs)} training pairs; gray VGG-19 features[:{VGG_END}] '
          f'{sum(p.numel() for p in model.features.parameters()):,} parameters; start at step {step}', flush=True)
    started = time.time()
    while step < config.max_steps:
        for group in optimizer.param_groups:
            group['lr'] = cosine_lr(step, config.max_steps, config.lr, config.min_lr)
        vis, ir, _ = sampler.batch(config.batch_size)
        loss, per_tap = reconstruction_loss(model, torch.from_numpy(np.concatenate([vis, ir])) * 2 - 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % config.log_every == 0:
            row = {'step': step, 'loss': float(loss.detach()), **{f'l_tap{i}': e for i, e in enumerate(per_tap)},
                   'lr': optimizer.param_groups[0]['lr'], 'seconds': round(time.time() - started, 1)}
            append_csv(out / 'train_log.csv', row)
        if step % config.val_every == 0 or step == config.max_steps:
            with torch.no_grad():
                val_loss, val_taps = reconstruction_loss(model, val_images)
            append_csv(out / 'val_log.csv', {'step': step, 'val_loss': float(val_loss),
                                             **{f'l_tap{i}': e for i, e in enumerate(val_taps)}})
        if step % config.ckpt_every == 0 or step == config.max_steps:
            save_checkpoint(last, {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'step': step,
                                   'config': config_to_dict(config), 'config_path': config_path,
                                   'sampler_rng': sampler.rng.bit_generator.state,
                                   'torch_rng': torch.get_rng_state()})
            save_checkpoint(out / 'vgg19_gray.pt', feature_state_dict(model))
    return out / 'vgg19_gray.pt'


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    config, args = parse_command_line(__doc__, argv)
    print(f'wrote {train_extractor(config, resume=args.resume, config_path=args.config)}')


if __name__ == '__main__':
    main()
