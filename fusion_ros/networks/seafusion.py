"""
SeAFusion fusion network (Tang et al., Information Fusion 82, 2022).

Rebuilt from the description in methods.md: two unshared encoders made of
gradient residual dense blocks (GRDB) and a plain conv decoder. No
downsampling, so the graph accepts any H x W; 166,657 parameters, the same
count as the authors' released checkpoint.
"""

import torch
from torch import nn

from fusion_ros.networks.layers import ConvLReLU, SobelMagnitude, conv3x3


class GRDB(nn.Module):
    """Gradient residual dense block: dense conv stream + Sobel gradient stream."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.dense1 = ConvLReLU(channels, channels)
        self.dense2 = ConvLReLU(2 * channels, channels)
        self.fuse = nn.Conv2d(3 * channels, out_channels, 1)
        self.sobel = SobelMagnitude(channels)
        self.grad = nn.Conv2d(channels, out_channels, 1)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = torch.cat([x, self.dense1(x)], dim=1)
        d2 = torch.cat([d1, self.dense2(d1)], dim=1)
        return self.act(self.fuse(d2) + self.grad(self.sobel(x)))


class Encoder(nn.Sequential):
    """One source's branch: conv 1->16, GRDB 16->32, GRDB 32->48."""

    def __init__(self):
        super().__init__(ConvLReLU(1, 16), GRDB(16, 32), GRDB(32, 48))


class SeAFusion(nn.Module):
    """Fuse visible luminance and infrared, both (N, 1, H, W) in [0, 1], into Y in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.vis_encoder = Encoder()
        self.ir_encoder = Encoder()
        self.decoder = nn.Sequential(
            ConvLReLU(96, 64), ConvLReLU(64, 32), ConvLReLU(32, 16), conv3x3(16, 1))

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.vis_encoder(vis_y), self.ir_encoder(ir)], dim=1)
        return torch.tanh(self.decoder(features)) / 2 + 0.5
