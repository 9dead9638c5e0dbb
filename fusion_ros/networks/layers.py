"""Small building blocks shared by the fusion networks."""

import torch
from torch import nn
import torch.nn.functional as F

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 convolution with 'same' zero padding, so any H x W passes through."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


class ConvLReLU(nn.Sequential):
    """3x3 conv followed by LeakyReLU(slope)."""

    def __init__(self, c_in: int, c_out: int, slope: float = 0.2):
        super().__init__(conv3x3(c_in, c_out), nn.LeakyReLU(slope))


class SobelMagnitude(nn.Module):
    """
    Per-channel |Sobel_x| + |Sobel_y| as two depthwise convs.

    The kernels start as Sobel but stay trainable, as in SeAFusion's GRDB
    (they are part of its 166,657 parameters).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.gx = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.gy = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        with torch.no_grad():
            self.gx.weight.copy_(torch.tensor(SOBEL_X).expand(channels, 1, 3, 3))
            self.gy.weight.copy_(torch.tensor(SOBEL_Y).expand(channels, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gx(x).abs() + self.gy(x).abs()


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Compute fixed |Sobel_x| + |Sobel_y| of a (N, 1, H, W) batch, zero padding (loss helper)."""
    kx = x.new_tensor(SOBEL_X).view(1, 1, 3, 3)
    ky = x.new_tensor(SOBEL_Y).view(1, 1, 3, 3)
    return F.conv2d(x, kx, padding=1).abs() + F.conv2d(x, ky, padding=1).abs()
