"""
CoCoNet fusion network (Liu et al., IJCV 2023/2024), as methods.md describes the released "Unet_resize_conv".

A U-Net (2 -> 32 -> 64 -> 128 -> 256) on concat[visible Y, IR] in [-1, 1], with one channel-attention
module per scale (1/2, 1/4, 1/8) shared by the U-Net feature and the features of a frozen, single-channel
VGG-19 run on each source; the three attended tensors are concatenated and reduced by a conv, and the
decoder joins them to its upsampled path. 6,789,764 trainable parameters plus 2,324,416 frozen VGG ones.
Inputs are reflect-padded to a multiple of 16 (left/top get the smaller half) and the output cropped back,
with pads computed from shape ops so the exported graph keeps dynamic H and W.
"""

from typing import Mapping

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.layers import conv3x3

MULTIPLE = 16   # three max-pools in the U-Net, four in the VGG branch's path to relu3_4
FP32_OPS = ('MatMul', 'ReduceMax', 'Sub', 'Softmax')
"""
ONNX op types an fp16 graph must keep in fp32 for CoCoNet.

The channel-attention energy q k^T sums H*W/4 products at 1/2 scale (76,800 at 640x480); in half
precision it overflows 65,504 and the softmax of the resulting inf/NaN wipes out the feature map.
The whole chain energy -> max -> max - energy -> softmax must stay fp32, not the MatMul alone: a
half-precision ReduceMax or Sub would overflow on the same values. In this graph MatMul, ReduceMax
and Softmax occur only in the attention; the other Subs are integer shape arithmetic of the padding
(no float to keep) and the [0, 1] -> [-1, 1] / colour maths (cheap, and exact enough either way).
"""

VGG19_CONFIG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)   # RGB -> gray, applied to the first conv's kernels
BRANCH_END = 18                        # features[:18] ends at relu3_4
BRANCH_TAPS = (3, 8, 17)               # relu1_2 (after the extra pool: 1/2), relu2_2 (1/4), relu3_4 (1/8)


def gray_vgg19_features(end: int) -> nn.Sequential:
    """
    Build torchvision's ``vgg19().features[:end]`` with a single-channel first conv.

    The layer indices are torchvision's, so ``features.N.weight`` keys of a torchvision state dict
    load unchanged (after ``gray_vgg_state_dict`` folds the RGB kernels of the first conv).
    """
    layers: list[nn.Module] = []
    c_in = 1
    for item in VGG19_CONFIG:
        if item == 'M':
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, item, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = item
    if not 0 < end <= len(layers):
        raise ValueError(f'VGG-19 features end must be in 1..{len(layers)}, got {end}')
    return nn.Sequential(*layers[:end])


def gray_vgg_state_dict(state: Mapping[str, torch.Tensor], end: int) -> dict[str, torch.Tensor]:
    """
    Select ``features.N.*`` (N < end) of a torchvision-format VGG-19 state dict, first conv made gray.

    A 3-channel first conv is folded to one channel with the 0.299 / 0.587 / 0.114 weights of
    RGB -> gray (what the authors did with ImageNet weights); a 1-channel one (a gray extractor
    trained here) is taken as is. Missing keys are an error naming them.
    """
    wanted = gray_vgg19_features(end).state_dict()
    missing = [k for k in wanted if f'features.{k}' not in state]
    if missing:
        raise KeyError(f'VGG-19 state dict lacks {len(missing)} key(s) up to features.{end - 1}: '
                       + ', '.join(f'features.{k}' for k in missing[:4]))
    out = {k: state[f'features.{k}'].float() for k in wanted}
    first = out['0.weight']
    if first.shape[1] == 3:
        out['0.weight'] = (first * first.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)).sum(1, keepdim=True)
    for key, value in out.items():
        if value.shape != wanted[key].shape:
            raise ValueError(f'features.{key} has shape {tuple(value.shape)}, VGG-19 needs {tuple(wanted[key].shape)}')
    return out


class GrayVGGBranch(nn.Module):
    """Frozen gray VGG-19 to relu3_4, with the released code's extra max-pool after relu1_1."""

    def __init__(self):
        super().__init__()
        self.features = gray_vgg19_features(BRANCH_END)
        self.pool = nn.MaxPool2d(2, 2)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.pool(self.features[:2](x))
        taps, start = [], 2
        for end in BRANCH_TAPS:
            x = self.features[start:end + 1](x)
            taps.append(x)
            start = end + 1
        return taps


class ConvBlock(nn.Sequential):
    """3x3 conv -> LeakyReLU(0.2) -> BatchNorm, the released order (BN after the activation)."""

    def __init__(self, c_in: int, c_out: int, batch_norm: bool = True):
        layers = [conv3x3(c_in, c_out), nn.LeakyReLU(0.2)]
        super().__init__(*layers, *([nn.BatchNorm2d(c_out)] if batch_norm else []))


class ChannelAttention(nn.Module):
    """
    DANet channel attention as CoCoNet uses it: q, k, v by 3x3 convs, out = gamma * attn(v) + v.

    attn = softmax(max(energy) - energy) over channels, energy = q k^T (C x C); gamma starts at 0,
    so an untrained module passes v through.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.query = conv3x3(channels, channels)
        self.key = conv3x3(channels, channels)
        self.value = conv3x3(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.value(x)
        energy = torch.bmm(self.query(x).flatten(2), self.key(x).flatten(2).transpose(1, 2))
        attention = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
        return self.gamma * torch.bmm(attention, value.flatten(2)).view_as(value) + value


def reflect_pad(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Reflect-pad H and W up to a multiple, left/top getting floor(d / 2); returns (padded, top, left).

    Sizes and pads are computed with tensor ops on ``x.shape`` so ONNX export records them as
    shape arithmetic (dynamic H, W), not as constants of the example input.
    """
    h, w = x.shape[-2], x.shape[-1]
    dh, dw = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
    top, left = dh // 2, dw // 2
    return F.pad(x, (left, dw - left, top, dh - top), mode='reflect'), top, left


class CoCoNet(nn.Module):
    """Fuse visible luminance and infrared, both (N, 1, H, W) in [0, 1], into Y in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.vgg = GrayVGGBranch()
        self.encoder = nn.ModuleList([
            nn.Sequential(ConvBlock(2, 32), ConvBlock(32, 32)),
            nn.Sequential(ConvBlock(32, 64), ConvBlock(64, 64)),
            nn.Sequential(ConvBlock(64, 128), ConvBlock(128, 128)),
            ConvBlock(128, 256)])
        self.pool = nn.MaxPool2d(2)
        self.attention = nn.ModuleList(ChannelAttention(c) for c in (64, 128, 256))      # 1/2, 1/4, 1/8
        self.merge = nn.ModuleList(conv3x3(3 * c, c) for c in (64, 128, 256))
        self.bottom = ConvBlock(256, 256)
        self.reduce = nn.ModuleList(conv3x3(2 * c, c) for c in (32, 64, 128))           # upsampled -> level
        self.decoder = nn.ModuleList([
            nn.Sequential(ConvBlock(64, 32), ConvBlock(32, 32, batch_norm=False)),
            nn.Sequential(ConvBlock(128, 64), ConvBlock(64, 64)),
            nn.Sequential(ConvBlock(256, 128), ConvBlock(128, 128))])
        self.head = nn.Conv2d(32, 1, 1)

    def attend(self, level: int, unet: torch.Tensor, vgg_vis: torch.Tensor, vgg_ir: torch.Tensor) -> torch.Tensor:
        """One shared attention module on the three features of a scale, concatenated and reduced to C."""
        attention = self.attention[level]
        return self.merge[level](torch.cat([attention(unet), attention(vgg_vis), attention(vgg_ir)], 1))

    def fuse_signed(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        """Run the released network proper on (N, 1, H, W) inputs in [-1, 1], sides multiples of 16 -> tanh output."""
        vgg_vis, vgg_ir = self.vgg(vis), self.vgg(ir)
        skips, x = [], torch.cat([vis, ir], 1)
        for level, stage in enumerate(self.encoder):
            x = stage(x if level == 0 else self.pool(x))
            skips.append(x)
        x = self.bottom(self.attend(2, skips[3], vgg_vis[2], vgg_ir[2]))
        for level in (2, 1, 0):
            up = self.reduce[level](F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=False))
            skip = skips[0] if level == 0 else self.attend(level - 1, skips[level], vgg_vis[level - 1],
                                                           vgg_ir[level - 1])
            x = self.decoder[level](torch.cat([up, skip], 1))
        return torch.tanh(self.head(x))

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        h, w = vis_y.shape[-2], vis_y.shape[-1]
        vis, top, left = reflect_pad(vis_y * 2 - 1)
        ir, _, _ = reflect_pad(ir * 2 - 1)
        out = self.fuse_signed(vis, ir)
        return out[..., top:top + h, left:left + w] / 2 + 0.5
