"""
A real-time fusion student (issue 13): a small pyramid predicts a local affine blend of the two sources.

Why this shape: on a CPU, full-resolution convolutions are memory-bound and slow in ONNX Runtime
(timed before training: a 3x3 conv of 8 channels at 640x480 took longer than a 32-channel one at
160x120, and a full-resolution bilinear resize of 8 channels as long as a conv), so every learned
layer runs at 1/2 resolution or below. The network
predicts three maps (a, b, c) at 1/2 resolution; they are upsampled bilinearly and the output is

    fused = clamp(a * visible_y + b * ir + c, 0, 1)

at full resolution, so edges and texture come from the sources themselves (the smooth maps only
choose, weigh and stretch them locally), the way HDRNet-style local affine models keep detail.
The stem is a 4x4 stride-2 convolution, so the 1/2-resolution features see every input pixel.

Ops: Conv, LeakyRelu, Resize (nearest inside, bilinear for the maps), Add, Mul, Clip, Slice,
Concat; any H x W (sizes come from the inputs, odd sizes included).
"""

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.layers import conv3x3

WIDTHS = (16, 32, 64)   # channels at 1/2, 1/4 and 1/8 resolution


def _down(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 stride-2 conv: half the resolution."""
    return nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)


class RealtimeFusion(nn.Module):
    """Fuse visible luminance and infrared, both (N, 1, H, W) in [0, 1], into Y in [0, 1]."""

    def __init__(self, widths: tuple[int, int, int] = WIDTHS):
        super().__init__()
        c1, c2, c3 = widths
        self.stem = nn.Conv2d(2, c1, 4, stride=2, padding=1)   # full -> 1/2, block-aligned with the x2 upsample
        self.down2, self.body2 = _down(c1, c2), conv3x3(c2, c2)
        self.down3, self.body3 = _down(c2, c3), conv3x3(c3, c3)
        self.lift3, self.merge2 = nn.Conv2d(c3, c2, 1), conv3x3(c2, c2)
        self.lift2, self.merge1 = nn.Conv2d(c2, c1, 1), conv3x3(c1, c1)
        self.head = conv3x3(c1, 3)
        self.act = nn.LeakyReLU(0.2)
        with torch.no_grad():   # start as the mean of the two sources: a stable, sensible first output
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([0.5, 0.5, 0.0]))

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Nearest upsampling to like's size (the next 3x3 conv smooths it; 10x cheaper than bilinear here)."""
        return F.interpolate(x, size=like.shape[-2:], mode='nearest')

    def coefficients(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        """The (a, b, c) maps at 1/2 resolution, (N, 3, ~H/2, ~W/2)."""
        f1 = self.act(self.stem(torch.cat([vis_y, ir], dim=1)))
        f2 = self.act(self.body2(self.act(self.down2(f1))))
        f3 = self.act(self.body3(self.act(self.down3(f2))))
        f2 = self.act(self.merge2(self.act(f2 + self._up(self.lift3(f3), f2))))
        f1 = self.act(self.merge1(self.act(f1 + self._up(self.lift2(f2), f1))))
        return self.head(f1)

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        coef = F.interpolate(self.coefficients(vis_y, ir), size=vis_y.shape[-2:], mode='bilinear',
                             align_corners=False)
        fused = coef[:, 0:1] * vis_y + coef[:, 1:2] * ir + coef[:, 2:3]
        return fused.clamp(0.0, 1.0)


def conv_macs(model: nn.Module, height: int, width: int) -> int:
    """
    Multiply-accumulates of every convolution for one (height x width) frame.

    Counted from the layers' actual output sizes (a forward pass with hooks), so it stays right
    when the design changes; elementwise ops and resizes are not counted.
    """
    total = 0

    def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels // module.groups * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, height, width), torch.zeros(1, 1, height, width))
    finally:
        for hook in hooks:
            hook.remove()
    return total
