"""
CoCoNet's losses (methods.md): the stage-1 loss with data-driven weights and the coupled contrastive loss.

All images enter in [0, 1] (the trainer's range) and are mapped to the ranges the released code used:
SSIM on [0, 1], MSE and the VGG features on [-1, 1].
"""

import torch
from torch import nn
import torch.nn.functional as F

from fusion_ros.networks.coconet import gray_vgg19_features
from fusion_ros.networks.layers import sobel_magnitude

SSIM_SIZE, SSIM_SIGMA = 11, 1.5
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2
SSIM_WEIGHT = 20.0
GRAD_TEMPERATURE, ENTROPY_TEMPERATURE = 0.5, 0.75   # c1, c2: w = softmax_k(m_k / (c * sum m))
CONTRAST_TAPS = (1, 6, 11, 20, 29)                   # relu1_1, 2_1, 3_1, 4_1, 5_1 of VGG-19 features
CONTRAST_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
NEGATIVES = 3                                        # the same pair's other source and two other pairs'


def gaussian_window(size: int = SSIM_SIZE, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D Gaussian (1, 1, size, size)."""
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each sample of two (N, 1, H, W) batches in [0, 1]: 11x11 Gaussian (sigma 1.5), zero padding."""
    window = gaussian_window().to(a)
    pad = SSIM_SIZE // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=pad)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
                / ((mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2)))
    return ssim_map.flatten(1).mean(1)


def entropy_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of each sample's 256-bin histogram; x (N, 1, H, W) in [0, 1], levels floor(255 x)."""
    levels = (x.detach().flatten(1).clamp(0.0, 1.0) * 255.0).long()
    ones = torch.ones_like(levels, dtype=torch.float32)
    counts = torch.zeros(x.shape[0], 256, device=x.device).scatter_add_(1, levels, ones)
    p = counts / counts.sum(1, keepdim=True)
    return -(p * torch.log2(p.clamp_min(1e-12))).sum(1)


def gradient_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Mean |Sobel_x| + |Sobel_y| of each sample, computed on the [-1, 1] image as the released code does."""
    return sobel_magnitude(x.detach() * 2 - 1).flatten(1).mean(1)


def adaptive_weights(vis: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Data-driven weights (w_grad, w_ent), each (2, N): row 0 visible, row 1 IR; columns sum to 1, no gradient.

    w_grad = softmax_k(g_k / (0.5 * sum g)) from mean gradients, w_ent = softmax_k(e_k / (0.75 * sum e))
    from entropies, per sample (the released code accumulates the histogram over the batch, a bug).
    """
    with torch.no_grad():
        g = torch.stack([gradient_per_sample(vis), gradient_per_sample(ir)])
        e = torch.stack([entropy_per_sample(vis), entropy_per_sample(ir)])
        w_grad = torch.softmax(g / (GRAD_TEMPERATURE * g.sum(0, keepdim=True).clamp_min(1e-12)), dim=0)
        w_ent = torch.softmax(e / (ENTROPY_TEMPERATURE * e.sum(0, keepdim=True).clamp_min(1e-12)), dim=0)
    return w_grad, w_ent


def stage1_loss(fused: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """
    L = 20 * sum_k w_grad,k (1 - SSIM(x_k, F)) + sum_k w_ent,k MSE(F, x_k), averaged over the batch.

    SSIM on [0, 1] images, MSE on [-1, 1] values (4x the [0, 1] MSE), as in the released code.
    """
    w_grad, w_ent = adaptive_weights(vis, ir)
    dissimilarity = torch.stack([1 - ssim_per_sample(x, fused) for x in (vis, ir)])
    mse = torch.stack([4.0 * (fused - x).pow(2).flatten(1).mean(1) for x in (vis, ir)])
    l_ssim = (w_grad * dissimilarity).sum(0).mean()
    l_mse = (w_ent * mse).sum(0).mean()
    return SSIM_WEIGHT * l_ssim + l_mse, {'l_ssim': float(l_ssim.detach()), 'l_mse': float(l_mse.detach()),
                                          'w_grad_vis': float(w_grad[0].mean()), 'w_ent_vis': float(w_ent[0].mean())}


class ContrastFeatures(nn.Module):
    """Frozen gray VGG-19 to relu5_1, returning the five taps of the contrastive loss."""

    def __init__(self):
        super().__init__()
        self.features = gray_vgg19_features(max(CONTRAST_TAPS) + 1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in CONTRAST_TAPS:
                taps.append(x)
        return taps


def contrastive_term(phi: ContrastFeatures, anchor: torch.Tensor, positive: torch.Tensor,
                     negatives: list[torch.Tensor]) -> torch.Tensor:
    """
    Sum_l w_l * L1(phi_l(a), phi_l(p)) / sum_j L1(phi_l(a), phi_l(n_j)), images in [-1, 1].

    The positive and the negatives are source images (no gradient), so their features are computed
    without autograd; the anchor (the masked fused image) carries the gradient.
    """
    anchor_taps = phi(anchor)
    with torch.no_grad():
        positive_taps = phi(positive)
        negative_taps = [phi(n) for n in negatives]
    total = anchor.new_zeros(())
    for level, weight in enumerate(CONTRAST_WEIGHTS):
        a = anchor_taps[level]
        pull = (a - positive_taps[level]).abs().mean()
        push = sum((a - n[level]).abs().mean() for n in negative_taps)
        total = total + weight * pull / push
    return total


def foreground(masks: torch.Tensor, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(M (N, 1, H, W) float, known (N,) bool): M = 1 on labelled objects; known where the sample has a mask."""
    known = (masks != ignore).flatten(1).all(1)
    m = ((masks > 0) & (masks != ignore)).to(torch.float32)[:, None]
    return m, known


def coupled_contrastive_loss(phi: ContrastFeatures, fused: torch.Tensor, vis: torch.Tensor, ir: torch.Tensor,
                             masks: torch.Tensor, ignore: int) -> tuple[torch.Tensor, dict[str, float]]:
    """
    L_fg + L_bg of methods.md on the samples that can carry them; all images (N, 1, H, W) in [0, 1].

    Foreground (IR-like targets): anchor F*M, positive IR*M, negatives the visible image of the same pair
    and of the next two pairs of the batch, times M. Background: anchor F*(1-M), positive visible*(1-M),
    negatives IR of the same and the next two pairs, times (1-M). A sample takes part in L_fg only if it
    has a mask with foreground pixels (the released code skips object-free patches to avoid dividing by
    zero), in L_bg only if it has a mask with background pixels; crops of sources without masks take
    only the stage-1 loss. Returns a graph-keeping zero when no sample qualifies.
    """
    n = fused.shape[0]
    if n < NEGATIVES:
        raise ValueError(f'the coupled contrastive loss needs a batch of at least {NEGATIVES} pairs, got {n}')
    m, known = foreground(masks, ignore)
    f, v, i = fused * 2 - 1, vis * 2 - 1, ir * 2 - 1
    terms, parts = [], {}
    for name, weight, positive, negative in (('l_fg', m, i, v), ('l_bg', 1 - m, v, i)):
        rows = torch.nonzero(known & (weight.flatten(1).sum(1) > 0)).flatten()
        if rows.numel() == 0:
            parts[name] = 0.0
            continue
        w = weight[rows]
        others = [negative[(rows + shift) % n] * w for shift in range(NEGATIVES)]
        term = contrastive_term(phi, f[rows] * w, positive[rows] * w, others)
        terms.append(term)
        parts[name] = float(term.detach())
    total = sum(terms) if terms else fused.sum() * 0.0
    return total, parts
