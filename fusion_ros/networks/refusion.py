"""
ReFusion fusion module F (Bai et al., IJCV 2024), rebuilt from methods.md.

Restormer blocks (transposed "channel" attention, so the attention matrix is C/8 x C/8 per
head whatever the image size) on each source, a cross-attention fusion block and two
Restormer blocks on the concatenation; no conv biases, no downsampling, so any H x W passes
without padding. 59,856 parameters, the count of the authors' released checkpoints.
Internally channel order follows the authors: IR first, visible second, and every module
registers its tensors in the order of the authors' modules, so parameter i here is tensor i of
their state dict (training.deploy.convert maps them by name; its tests check both agree).
"""

import torch
from torch import nn
import torch.nn.functional as F

HEADS = 8
DIM = 16
FFN_EXPANSION = 2
LN_EPS = 1e-5

FP32_OPS = ('ReduceL2', 'Clip', 'Expand', 'Div', 'LayerNormalization')
"""
ONNX op types an fp16 graph of ReFusion must keep in fp32 (what ``torch.onnx.export`` makes here).

``F.normalize`` over the H*W axis exports as ReduceL2 -> Clip -> Expand -> Div: the norm sums
the squares of every pixel of a channel (307,200 at 640x480), which overflows half precision
(max 65,504), and the Div must see that fp32 norm. LayerNormalization divides by a variance that
is small for flat channels; fp16 loses it. The uint8 graph's own Div (by 255) and Clip (the final
clamp) are on this list only as a side effect and cost nothing in fp32.
"""


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    """Pointwise conv without bias (ReFusion has none anywhere)."""
    return nn.Conv2d(c_in, c_out, 1, bias=False)


def depthwise3x3(channels: int) -> nn.Conv2d:
    """Depthwise 3x3 conv without bias, zero 'same' padding."""
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """Dense 3x3 conv without bias, zero 'same' padding."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)


def channel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """
    Transposed multi-head attention: softmax(q k^T * t) v with q, k L2-normalised over H*W.

    q, k, v are (N, C, H, W); the C channels are split into HEADS groups and each head
    attends over its C/HEADS channels, so the cost is linear in H*W. ``temperature`` is
    (HEADS, 1, 1). The reshape keeps -1 for H*W, so exported graphs stay size-agnostic.
    """
    n, c, h, w = v.shape
    q, k, v = (t.reshape(n, HEADS, c // HEADS, -1) for t in (q, k, v))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = torch.softmax(q @ k.transpose(-2, -1) * temperature, dim=-1)
    return (attn @ v).reshape(n, c, h, w)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map (with bias, eps 1e-5): one LayerNormalization op in ONNX."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, LN_EPS)
        return y.permute(0, 3, 1, 2)


class QKV(nn.Sequential):
    """q, k, v of one source: depthwise 3x3 of a 1x1 conv C -> 3C."""

    def __init__(self, dim: int):
        super().__init__(conv1x1(dim, 3 * dim), depthwise3x3(3 * dim))


class SelfAttention(nn.Module):
    """MDTA: multi-Dconv-head transposed self-attention."""

    def __init__(self, dim: int):
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(HEADS, 1, 1))
        self.qkv = QKV(dim)
        self.proj = conv1x1(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.proj(channel_attention(q, k, v, self.temperature))


class GatedFeedForward(nn.Module):
    """GDFN: 1x1 C -> 2 * hidden, depthwise 3x3, GELU(x1) * x2, 1x1 hidden -> C."""

    def __init__(self, dim: int):
        super().__init__()
        hidden = dim * FFN_EXPANSION
        self.expand = conv1x1(dim, 2 * hidden)
        self.dw = depthwise3x3(2 * hidden)
        self.shrink = conv1x1(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dw(self.expand(x)).chunk(2, dim=1)
        return self.shrink(F.gelu(x1) * x2)


class RestormerBlock(nn.Module):
    """x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = SelfAttention(dim)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = GatedFeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class GatedProjection(nn.Sequential):
    """Depthwise 3x3 of a 1x1 conv: the gate and value maps of the fusion block."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv1x1(c_in, c_out), depthwise3x3(c_out))


class CrossAttentionFusion(nn.Module):
    """
    Fusion block: each source attends with the other's queries, then a gated mix of both.

    out_ir = attn(q_vis, k_ir) v_ir and out_vis = attn(q_ir, k_vis) v_vis; x_s += proj_s(out_s);
    cat = [x_ir, x_vis]; gates g_ir, g_vis from cat; result cat + sum_s out_s(GELU(g_s) * value_s(x_s)).
    No LayerNorm here (as released).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.temperature_ir = nn.Parameter(torch.ones(HEADS, 1, 1))
        self.temperature_vis = nn.Parameter(torch.ones(HEADS, 1, 1))
        self.qkv_ir, self.qkv_vis = QKV(dim), QKV(dim)
        self.proj_ir, self.proj_vis = conv1x1(dim, dim), conv1x1(dim, dim)
        self.gates = GatedProjection(2 * dim, 8 * dim)
        self.value_ir, self.value_vis = GatedProjection(dim, 4 * dim), GatedProjection(dim, 4 * dim)
        self.out_ir, self.out_vis = conv1x1(4 * dim, 2 * dim), conv1x1(4 * dim, 2 * dim)

    def forward(self, x_ir: torch.Tensor, x_vis: torch.Tensor) -> torch.Tensor:
        q_ir, k_ir, v_ir = self.qkv_ir(x_ir).chunk(3, dim=1)
        q_vis, k_vis, v_vis = self.qkv_vis(x_vis).chunk(3, dim=1)
        x_ir = x_ir + self.proj_ir(channel_attention(q_vis, k_ir, v_ir, self.temperature_ir))
        x_vis = x_vis + self.proj_vis(channel_attention(q_ir, k_vis, v_vis, self.temperature_vis))
        cat = torch.cat([x_ir, x_vis], dim=1)
        g_ir, g_vis = self.gates(cat).chunk(2, dim=1)
        return (cat + self.out_ir(F.gelu(g_ir) * self.value_ir(x_ir))
                + self.out_vis(F.gelu(g_vis) * self.value_vis(x_vis)))


class ReFusion(nn.Module):
    """Fuse visible luminance and infrared, both (N, 1, H, W) in [0, 1], into Y in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.embed_ir, self.embed_vis = conv3x3(1, DIM), conv3x3(1, DIM)
        self.ir_blocks = nn.Sequential(RestormerBlock(DIM), RestormerBlock(DIM))
        self.vis_blocks = nn.Sequential(RestormerBlock(DIM), RestormerBlock(DIM))
        self.fusion = CrossAttentionFusion(DIM)
        self.fused_blocks = nn.Sequential(RestormerBlock(2 * DIM), RestormerBlock(2 * DIM))
        self.head = nn.Sequential(conv3x3(2 * DIM, DIM), nn.LeakyReLU(0.01), conv3x3(DIM, 1))

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(self.ir_blocks(self.embed_ir(ir)), self.vis_blocks(self.embed_vis(vis_y)))
        return torch.sigmoid(self.head(self.fused_blocks(fused)))
