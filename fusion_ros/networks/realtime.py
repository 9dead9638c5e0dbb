"""
A real-time fusion student (issue 13): a small pyramid predicts a local blend of the two sources.

Why this shape: on a CPU, full-resolution convolutions are memory-bound and slow in ONNX Runtime
(timed before training, 640x480, 1 thread: a 3x3 conv of 8 channels at full resolution took longer
than a 32-channel one at 1/4; a first design with its learned layers at 1/2 resolution cost 52 ms
per uint8 frame against 35 ms for this one, of which about 10 ms is the graph's colour maths), so
every learned layer runs at 1/4 resolution or below. The network predicts four maps (a, b, m, c)
at 1/4 resolution; they are upsampled bilinearly and the output is

    fused = clamp(a * visible_y + b * ir + m * max(visible_y, ir) + c, 0, 1)

at full resolution. Edges and texture come from the sources themselves (the smooth maps only
choose, weigh and stretch them locally, the way HDRNet-style local affine models keep detail), and
the max basis lets the blend switch between sources pixel by pixel where the maps cannot: with
m = 1 and the rest 0 it is the pixel-max fusion, which is where training starts.

The stem is a 4x4 stride-4 convolution, so each 1/4-resolution feature sees exactly its 4x4 block
(aligned with the x4 bilinear upsampling); context comes from one more level at 1/8.
Ops: Conv, LeakyRelu, Resize (nearest inside, bilinear for the maps), Max, Add, Mul, Clip, Slice,
Concat; any H x W (sizes come from the inputs, odd sizes included).
"""

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.layers import conv3x3

WIDTHS = (32, 64)   # channels at 1/4 and 1/8 resolution


class RealtimeFusion(nn.Module):
    """Fuse visible luminance and infrared, both (N, 1, H, W) in [0, 1], into Y in [0, 1]."""

    def __init__(self, widths: tuple[int, int] = WIDTHS):
        super().__init__()
        c1, c2 = widths
        self.stem = nn.Conv2d(2, c1, 4, stride=4)                  # full -> 1/4, one 4x4 block per feature
        self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1)      # 1/4 -> 1/8
        self.body = conv3x3(c2, c2)
        self.lift = nn.Conv2d(c2, c1, 1)
        self.merge = conv3x3(c1, c1)
        self.head = conv3x3(c1, 4)
        self.act = nn.LeakyReLU(0.2)
        with torch.no_grad():   # start as the pixel max of the two sources: a strong, stable first output
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))

    def coefficients(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        """Predict the (a, b, m, c) maps at 1/4 resolution, (N, 4, ~H/4, ~W/4)."""
        f1 = self.act(self.stem(torch.cat([vis_y, ir], dim=1)))
        f2 = self.act(self.body(self.act(self.down(f1))))
        # nearest upsampling: the next 3x3 conv smooths it, and it is ~10x cheaper than bilinear here
        f1 = self.act(self.merge(self.act(f1 + F.interpolate(self.lift(f2), size=f1.shape[-2:], mode='nearest'))))
        return self.head(f1)

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        coef = F.interpolate(self.coefficients(vis_y, ir), size=vis_y.shape[-2:], mode='bilinear',
                             align_corners=False)
        fused = (coef[:, 0:1] * vis_y + coef[:, 1:2] * ir + coef[:, 2:3] * torch.maximum(vis_y, ir)
                 + coef[:, 3:4])
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
