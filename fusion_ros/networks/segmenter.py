"""
A small segmentation network for SeAFusion's semantic loss, trained from scratch.

The released SeAFusion uses BiSeNet (context path on an ImageNet ResNet-18);
neither ImageNet weights nor MSRS label maps are available offline, so this is
a compact context path in the same spirit (methods.md): strided convs down to
1/16, global-average context, a 1/8 fusion of the two, a main head and an
auxiliary head on the 1/8 features, bilinear upsampling to the input size.
It reads one luminance plane, so visible Y, IR and fused Y are all valid
inputs and the task-driven evaluation compares like with like.
"""

import torch
from torch import nn
import torch.nn.functional as F


def conv_bn(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 conv + BatchNorm + ReLU (BatchNorm folds into the conv at ONNX export)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Segmenter(nn.Module):
    """(N, 1, H, W) luminance in [0, 1] -> (main, aux) logits of shape (N, classes, H, W)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.classes = classes
        self.down8 = nn.Sequential(conv_bn(1, 16, 2), conv_bn(16, 32, 2), conv_bn(32, 64, 2), conv_bn(64, 64))
        self.down16 = nn.Sequential(conv_bn(64, 96, 2), conv_bn(96, 96, dilation=2), conv_bn(96, 96, dilation=4))
        self.context = nn.Conv2d(96, 96, 1)
        self.merge = conv_bn(96 + 64, 64)
        self.head = nn.Conv2d(64, classes, 1)
        self.aux_head = nn.Conv2d(64, classes, 1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = y.shape[-2:]
        f8 = self.down8(y * 2 - 1)
        f16 = self.down16(f8)
        f16 = f16 + self.context(f16.mean((2, 3), keepdim=True))
        up = F.interpolate(f16, size=f8.shape[-2:], mode='bilinear', align_corners=False)
        main = self.head(self.merge(torch.cat([up, f8], 1)))
        aux = self.aux_head(f8)
        return (F.interpolate(main, size=size, mode='bilinear', align_corners=False),
                F.interpolate(aux, size=size, mode='bilinear', align_corners=False))
