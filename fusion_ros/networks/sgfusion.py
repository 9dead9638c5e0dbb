"""
SGFusion: saliency-guided fusion (Liu, Dian, Li, Liu, Information Fusion 91, 2023).

No code was released, so this follows the design of methods.md: one shared
single-channel encoder at four scales (full, 1/2, 1/4, 1/8), and two U-Net
style decoders on the encoder's skips, one reconstructing the input image and
one detecting saliency. Trained on single images (reconstruction everywhere,
BCE where a mask exists). At fusion time each source is encoded, and at every
scale the *first conv of the saliency decoder* scores each source's features;
a per-pixel softmax of the two scores weights the features, and the
reconstruction decoder turns the fused features into the fused Y while the
saliency decoder gives the saliency mask. Only conv, LeakyReLU, nearest
resize, reflect pad, softmax and sigmoid: all in TensorRT's ONNX parser.
"""

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.layers import ConvLReLU, conv3x3

CHANNELS = (16, 32, 64, 128)
MULTIPLE = 2 ** (len(CHANNELS) - 1)   # input sides are reflect-padded to a multiple of this


class Encoder(nn.Module):
    """Four scales; each scale is a (stride-2 after the first) conv and a conv, LeakyReLU(0.2)."""

    def __init__(self):
        super().__init__()
        stages, c_in = [], 1
        for level, c_out in enumerate(CHANNELS):
            first = ConvLReLU(c_in, c_out) if level == 0 else nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
            stages.append(nn.Sequential(first, ConvLReLU(c_out, c_out)))
            c_in = c_out
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class Decoder(nn.Module):
    """
    U-Net decoder with additive skips, ending in a sigmoid.

    ``entry[s]`` is the first conv the decoder applies to the encoder features
    of scale s; the fusion rule reads its pre-activation output, which is why
    it is kept apart from its activation.
    """

    def __init__(self):
        super().__init__()
        self.entry = nn.ModuleList(conv3x3(c, c) for c in CHANNELS)
        self.act = nn.LeakyReLU(0.2)
        self.up = nn.ModuleList(ConvLReLU(CHANNELS[s], CHANNELS[s - 1]) for s in range(1, len(CHANNELS)))
        self.head = conv3x3(CHANNELS[0], 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.act(self.entry[-1](features[-1]))
        for s in range(len(CHANNELS) - 2, -1, -1):
            x = F.interpolate(self.up[s](x), scale_factor=2.0, mode='nearest')
            x = self.act(self.entry[s](features[s])) + x
        return torch.sigmoid(self.head(x))


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Reflect-pad H and W at the bottom / right up to a multiple (sizes stay symbolic in ONNX)."""
    h, w = x.shape[-2], x.shape[-1]
    return F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple),
                 mode='reflect')


class SGFusion(nn.Module):
    """Shared encoder, reconstruction decoder, saliency decoder; forward fuses two sources."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.reconstruction = Decoder()
        self.saliency = Decoder()

    def autoencode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path on single images (N, 1, H, W), H and W multiples of 8: (reconstruction, saliency)."""
        features = self.encoder(image)
        return self.reconstruction(features), self.saliency(features)

    def fuse_features(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> list[torch.Tensor]:
        """Weight the two sources per pixel and scale by the saliency decoder's first-conv activity."""
        fused = []
        for entry, a, b in zip(self.saliency.entry, feats_a, feats_b):
            activity = torch.cat([entry(a).abs().mean(1, keepdim=True), entry(b).abs().mean(1, keepdim=True)], 1)
            weights = torch.softmax(activity, dim=1)
            fused.append(weights[:, :1] * a + weights[:, 1:] * b)
        return fused

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse (N, 1, H, W) visible Y and IR in [0, 1]: (fused Y, saliency), both cropped back to H x W."""
        h, w = vis_y.shape[-2], vis_y.shape[-1]
        fused = self.fuse_features(self.encoder(pad_to_multiple(vis_y)), self.encoder(pad_to_multiple(ir)))
        return self.reconstruction(fused)[..., :h, :w], self.saliency(fused)[..., :h, :w]
