"""
ReFusion's learned loss: the loss proposal module P, the reconstruction module R and one meta step.

No training code was released, so this is the design of methods.md. P looks at both sources
and proposes, per pixel, how much each source should count in the intensity and in the gradient
term of the fusion loss (a softmax across the two sources). R maps a fused image back to both
sources. P is judged by what its loss teaches: one differentiable SGD step of F under P's loss
gives F', and the reconstruction loss of R(F'(x)) flows back through that step into P. So P
learns to propose losses after which the fused image keeps what is needed to recover both inputs.
P and R are training-only; only F is exported.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from fusion_ros.networks.layers import sobel_magnitude

WIDTH = 16


def _conv_stack(c_in: int, c_out: int, dilations: tuple[int, ...]) -> nn.Sequential:
    """3x3 convs (LeakyReLU 0.2 between) with the given dilations, then a 3x3 conv to c_out."""
    layers: list[nn.Module] = []
    for d in dilations:
        layers += [nn.Conv2d(c_in, WIDTH, 3, padding=d, dilation=d), nn.LeakyReLU(0.2)]
        c_in = WIDTH
    return nn.Sequential(*layers, nn.Conv2d(c_in, c_out, 3, padding=1))


class LossProposal(nn.Module):
    """
    P: (ir, vis) -> weights (N, 2 terms, 2 sources, H, W); terms (intensity, gradient), sources (ir, vis).

    Dilated convs give it a ~31 pixel receptive field, so a weight can depend on the
    neighbourhood (a bright IR blob, a textured visible patch), not only on the pixel.
    """

    def __init__(self):
        super().__init__()
        self.body = _conv_stack(2, 4, (1, 2, 4, 8))
        nn.init.zeros_(self.body[-1].weight)   # start from the plain loss (equal weights): any spread is learned
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        logits = self.body(torch.cat([ir, vis], dim=1))
        return torch.softmax(logits.unflatten(1, (2, 2)), dim=2)


class Reconstruction(nn.Module):
    """R: fused (N, 1, H, W) -> (N, 2, H, W) estimates of (ir, vis) in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.body = _conv_stack(1, 2, (1, 1, 1))

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(fused))


def gradients(planes: torch.Tensor) -> torch.Tensor:
    """|Sobel_x| + |Sobel_y| of every channel of an (N, C, H, W) map (zero padding)."""
    return sobel_magnitude(planes.flatten(0, 1)[:, None]).view_as(planes)


def fusion_loss(weights: torch.Tensor, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """
    P's parameterised loss: sum_k mean((w_k^int (x_k - F))^2) + sum_k mean((w_k^grad (grad x_k - grad F))^2).

    ``sources`` is (N, 2, H, W) = (ir, vis); ``weights`` as returned by LossProposal.
    """
    intensity = (weights[:, 0] * (sources - fused)) ** 2
    gradient = (weights[:, 1] * (gradients(sources) - gradients(fused))) ** 2
    return intensity.mean((0, 2, 3)).sum() + gradient.mean((0, 2, 3)).sum()


def reconstruction_loss(estimate: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """mean(max(|A - A^|, |B - B^|)^2) on intensities plus the same on gradients: the worse source counts."""
    intensity = (estimate - sources).abs().amax(1) ** 2
    gradient = (gradients(estimate) - gradients(sources)).abs().amax(1) ** 2
    return intensity.mean() + gradient.mean()


def weight_spread(weights: torch.Tensor) -> tuple[float, float]:
    """Spatial std of P's IR weight maps (intensity, gradient), mean over the batch; 0 means a constant map."""
    spread = weights[:, :, 0].flatten(2).std(dim=2).mean(0)
    return float(spread[0]), float(spread[1])


@dataclass
class MetaNets:
    """The three networks of a ReFusion run and their Adam optimisers."""

    fusion: nn.Module
    proposal: LossProposal
    reconstruction: Reconstruction
    fusion_opt: torch.optim.Optimizer
    proposal_opt: torch.optim.Optimizer
    reconstruction_opt: torch.optim.Optimizer


def meta_step(nets: MetaNets, vis: torch.Tensor, ir: torch.Tensor, inner_lr: float) -> float:
    """
    P's meta step, (a) and (b) of methods.md; returns the outer reconstruction loss.

    (a) inner: the gradient g of P's loss w.r.t. F's parameters theta, kept differentiable
        (create_graph), gives F' = F(theta - inner_lr * g / |g|) through torch.func.functional_call.
        The step is normalised: the weights sit inside the squares, so a one-hot P makes the loss,
        and an SGD step, up to twice as large, and the one-step lookahead rewards a longer step; in
        a trial without it (P at lr 3e-3) P went to all-visible maps within 40 meta steps.
        Normalised, P chooses the direction of F's step, not its length;
    (b) outer: the reconstruction loss of R(F'(x)) is differentiated w.r.t. P alone (F and R
        are left as they are) and P takes an Adam step.
    """
    sources = torch.cat([ir, vis], dim=1)
    params = dict(nets.fusion.named_parameters())
    inner = fusion_loss(nets.proposal(ir, vis), nets.fusion(vis, ir), sources)
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
    length = torch.sqrt(sum((g ** 2).sum() for g in grads)) + 1e-12
    fast = {name: p - inner_lr * g / length for (name, p), g in zip(params.items(), grads)}
    outer = reconstruction_loss(nets.reconstruction(functional_call(nets.fusion, fast, (vis, ir))), sources)
    for p, g in zip(nets.proposal.parameters(), torch.autograd.grad(outer, list(nets.proposal.parameters()))):
        p.grad = g
    nets.proposal_opt.step()
    return float(outer.detach())


def fusion_step(nets: MetaNets, vis: torch.Tensor, ir: torch.Tensor) -> dict[str, float]:
    """
    (c) of methods.md: F takes an Adam step under P's loss with P's maps detached, R one on F(x) detached.

    Detaching keeps each network on its own objective: P learns only through the meta step, and R
    learns to invert the current F without pulling F towards what R finds easy.
    """
    sources = torch.cat([ir, vis], dim=1)
    with torch.no_grad():
        weights = nets.proposal(ir, vis)
    fused = nets.fusion(vis, ir)
    loss = fusion_loss(weights, fused, sources)
    nets.fusion_opt.zero_grad(set_to_none=True)
    loss.backward()
    nets.fusion_opt.step()
    own = reconstruction_loss(nets.reconstruction(fused.detach()), sources)
    nets.reconstruction_opt.zero_grad(set_to_none=True)
    own.backward()
    nets.reconstruction_opt.step()
    spread_int, spread_grad = weight_spread(weights)
    return {'fusion_loss': float(loss.detach()), 'r_loss': float(own.detach()),
            'std_w_int': spread_int, 'std_w_grad': spread_grad}
