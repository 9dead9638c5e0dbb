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
from fusion_ros.networks.refusion import conv3x3, DIM, RestormerBlock

WIDTH = 16
PROPOSALS = ('conv', 'restormer', 'contrast')
PROPOSAL_INITS = ('zero', 'random')
INNER_STEPS = ('normalised', 'sgd')
OUTER_STEPS = ('adam', 'maxnorm')


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

    def __init__(self, zero_last: bool = True):
        super().__init__()
        self.body = _conv_stack(2, 4, (1, 2, 4, 8))
        if zero_last:      # start from the plain loss (equal weights): any spread is learned
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        logits = self.body(torch.cat([ir, vis], dim=1))
        return torch.softmax(logits.unflatten(1, (2, 2)), dim=2)


class RestormerProposal(nn.Module):
    """
    P as a real network (the TDFusion lead of methods.md): Restormer features per source, then mixed.

    Per source a 3x3 conv 1 -> 16 and two Restormer blocks, concatenation, two blocks at 32
    channels, 3x3 conv 32 -> 16, PReLU, 3x3 conv 16 -> 4 (intensity and gradient logits of both
    sources), softmax across the sources. Its receptive field is global through the channel
    attention, so a weight can follow what a whole object looks like in each source. The last conv
    starts at zero, so P starts from the plain loss like LossProposal.
    """

    def __init__(self, zero_last: bool = True):
        super().__init__()
        self.embed_ir, self.embed_vis = conv3x3(1, DIM), conv3x3(1, DIM)
        self.ir_blocks = nn.Sequential(RestormerBlock(DIM), RestormerBlock(DIM))
        self.vis_blocks = nn.Sequential(RestormerBlock(DIM), RestormerBlock(DIM))
        self.mixed_blocks = nn.Sequential(RestormerBlock(2 * DIM), RestormerBlock(2 * DIM))
        self.head = nn.Sequential(conv3x3(2 * DIM, DIM), nn.PReLU(), conv3x3(DIM, 4))
        if zero_last:
            nn.init.zeros_(self.head[-1].weight)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.ir_blocks(self.embed_ir(ir)), self.vis_blocks(self.embed_vis(vis))], dim=1)
        logits = self.head(self.mixed_blocks(features))
        return torch.softmax(logits.unflatten(1, (2, 2)), dim=2)


class ContrastProposal(nn.Module):
    """
    A diagnostic P, informative from its first step: a contrast prior with one learned gain.

    The brighter source gets the intensity weight, the more textured one the gradient weight
    (softmax across sources of intensity and of 7x7-mean |gradient|, divided by 0.02): SeAFusion's
    max-intensity, max-gradient target as weight maps. One learned gain scales both logits, so the
    meta step can still sharpen or soften it. It answers the ablation's question from the other
    side: if F leaves the blend under these maps within the same budget, the gap is P's flatness
    alone, not F, R or the loss's form.
    """

    TEMPERATURE = 0.02

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        sources = torch.cat([ir, vis], dim=1)
        texture = nn.functional.avg_pool2d(gradients(sources), 7, stride=1, padding=3, count_include_pad=False)
        logits = torch.stack([sources, texture], dim=1) * (self.gain / self.TEMPERATURE)
        return torch.softmax(logits, dim=2)


def make_proposal(kind: str, init: str = 'zero') -> nn.Module:
    """
    P of the given kind ('conv': dilated convs, 'restormer': TDFusion-style network, 'contrast': diagnostic rule).

    ``init`` is how a learned P's last conv starts: 'zero' (our default: the plain loss, flat maps, so
    any spread is learned) or 'random' (PyTorch's default initialisation, as TDFusion's code leaves
    it: P starts from random, non-flat maps). A zero last layer also keeps every earlier layer's
    gradient at zero until it has grown, which matters when P's steps are as small as 1e-4.
    """
    if kind not in PROPOSALS:
        raise ValueError(f'proposal must be one of {PROPOSALS}, got {kind!r}')
    if init not in PROPOSAL_INITS:
        raise ValueError(f'proposal_init must be one of {PROPOSAL_INITS}, got {init!r}')
    if kind == 'contrast':
        return ContrastProposal()
    return {'conv': LossProposal, 'restormer': RestormerProposal}[kind](zero_last=init == 'zero')


def swapped(vis: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Return the batch plus each pair with IR and visible exchanged: the circulating script's "stable training" lead.

    F and P then see every pair in both orders, so neither can lean on which input is the IR one.
    """
    return torch.cat([vis, ir]), torch.cat([ir, vis])


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


def fusion_loss(weights: torch.Tensor, fused: torch.Tensor, sources: torch.Tensor,
                grad_weight: float = 1.0) -> torch.Tensor:
    """
    P's parameterised loss: sum_k mean((w_k^int (x_k - F))^2) + g sum_k mean((w_k^grad (grad x_k - grad F))^2).

    ``sources`` is (N, 2, H, W) = (ir, vis); ``weights`` as returned by LossProposal; ``grad_weight``
    is g, 1 except where the gradient term is ramped up over a run.
    """
    intensity = (weights[:, 0] * (sources - fused)) ** 2
    gradient = (weights[:, 1] * (gradients(sources) - gradients(fused))) ** 2
    return intensity.mean((0, 2, 3)).sum() + grad_weight * gradient.mean((0, 2, 3)).sum()


def reconstruction_loss(estimate: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """mean(max(|A - A^|, |B - B^|)^2) on intensities plus the same on gradients: the worse source counts."""
    intensity = (estimate - sources).abs().amax(1) ** 2
    gradient = (gradients(estimate) - gradients(sources)).abs().amax(1) ** 2
    return intensity.mean() + gradient.mean()


def blend_distance(weights: torch.Tensor, fused: torch.Tensor, sources: torch.Tensor) -> float:
    """
    Mean |F - sum_k w_k^int x_k| in grey levels: how far F is from the per-pixel blend of P's own weights.

    A flat P's loss is minimised by that blend, so a small distance means F learned to average;
    an F that keeps each source's detail where P asks for it sits further away.
    """
    blend = (weights[:, 0] * sources).sum(1, keepdim=True)
    return float((fused - blend).abs().mean()) * 255


def weight_spread(weights: torch.Tensor) -> tuple[float, float]:
    """Spatial std of P's IR weight maps (intensity, gradient), mean over the batch; 0 means a constant map."""
    spread = weights[:, :, 0].flatten(2).std(dim=2).mean(0)
    return float(spread[0]), float(spread[1])


@dataclass
class MetaNets:
    """The three networks of a ReFusion run and their Adam optimisers."""

    fusion: nn.Module
    proposal: nn.Module
    reconstruction: Reconstruction
    fusion_opt: torch.optim.Optimizer
    proposal_opt: torch.optim.Optimizer
    reconstruction_opt: torch.optim.Optimizer


@dataclass(frozen=True)
class MetaSettings:
    """How one meta step is taken: the leads of methods.md that the ablation switches."""

    inner_lr: float = 0.01          # 'normalised': length of F's step; 'sgd': unused (F's lr is used)
    inner_step: str = 'normalised'  # 'normalised': theta - inner_lr g / |g|; 'sgd': theta - lr g
    outer_step: str = 'adam'        # 'adam': P's Adam; 'maxnorm': phi - lr g / max|g|
    lr: float = 1e-4                # F's current learning rate (the sgd inner and maxnorm outer steps use it)
    grad_weight: float = 1.0        # weight of the gradient term of P's loss

    def __post_init__(self):
        """Reject unknown step kinds at once, not after an hour of training."""
        if self.inner_step not in INNER_STEPS:
            raise ValueError(f'inner_step must be one of {INNER_STEPS}, got {self.inner_step!r}')
        if self.outer_step not in OUTER_STEPS:
            raise ValueError(f'outer_step must be one of {OUTER_STEPS}, got {self.outer_step!r}')


Batch = tuple[torch.Tensor, torch.Tensor]   # (vis, ir), each (N, 1, H, W) in [0, 1]


def meta_gradient(nets: MetaNets, inner: Batch, outer: Batch, settings: MetaSettings) -> tuple[list, float]:
    """
    Compute P's gradient through one differentiable step of F ((a) and (b) of methods.md); return it and the outer loss.

    (a) inner: the gradient g of P's loss on the ``inner`` batch w.r.t. F's parameters theta, kept
        differentiable (create_graph), gives F' through torch.func.functional_call. 'normalised':
        F' = F(theta - inner_lr g / |g|). The weights sit inside the squares, so a one-hot P makes the
        loss, and a plain SGD step, up to twice as large, and the one-step lookahead rewards a longer
        step; in a trial without it (P at lr 3e-3) P went to all-visible maps within 40 meta steps.
        Normalised, P chooses the direction of F's step, not its length. 'sgd': F' = F(theta - lr g),
        the plain second-order step of the circulating script.
    (b) outer: the reconstruction loss of R(F'(x)) on the ``outer`` batch, differentiated w.r.t. P
        alone (F and R are left as they are). The same batch for both is the interleaved loop; two
        batches ask P for a loss that helps on data it did not shape the step with.
    """
    (vis, ir), (vis_out, ir_out) = inner, outer
    params = dict(nets.fusion.named_parameters())
    loss = fusion_loss(nets.proposal(ir, vis), nets.fusion(vis, ir), torch.cat([ir, vis], dim=1),
                       settings.grad_weight)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    if settings.inner_step == 'normalised':
        scale = settings.inner_lr / (torch.sqrt(sum((g ** 2).sum() for g in grads)) + 1e-12)
    else:
        scale = settings.lr
    fast = {name: p - scale * g for (name, p), g in zip(params.items(), grads)}
    estimate = nets.reconstruction(functional_call(nets.fusion, fast, (vis_out, ir_out)))
    outer_loss = reconstruction_loss(estimate, torch.cat([ir_out, vis_out], dim=1))
    return list(torch.autograd.grad(outer_loss, list(nets.proposal.parameters()))), float(outer_loss.detach())


def proposal_step(nets: MetaNets, grads: list, settings: MetaSettings) -> None:
    """
    Update P with a (possibly accumulated) meta gradient.

    'adam': P's own Adam. 'maxnorm': phi <- phi - lr g / max|g| over all of P's parameters (the
    circulating script): the largest entry moves by exactly F's learning rate, whatever the scale
    of a second-order gradient that can vanish or explode with F's state.
    """
    params = list(nets.proposal.parameters())
    if settings.outer_step == 'adam':
        for p, g in zip(params, grads):
            p.grad = g
        nets.proposal_opt.step()
        return
    largest = max(float(g.abs().max()) for g in grads) + 1e-12
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= settings.lr * g / largest


def meta_step(nets: MetaNets, batch: Batch, settings: MetaSettings) -> float:
    """P's meta step of the interleaved loop (the same batch inside and outside); returns the outer loss."""
    grads, outer = meta_gradient(nets, batch, batch, settings)
    proposal_step(nets, grads, settings)
    return outer


def fusion_step(nets: MetaNets, vis: torch.Tensor, ir: torch.Tensor, grad_weight: float = 1.0) -> dict[str, float]:
    """
    (c) of methods.md: F takes an Adam step under P's loss with P's maps detached, R one on F(x) detached.

    Detaching keeps each network on its own objective: P learns only through the meta step, and R
    learns to invert the current F without pulling F towards what R finds easy.
    """
    sources = torch.cat([ir, vis], dim=1)
    with torch.no_grad():
        weights = nets.proposal(ir, vis)
    fused = nets.fusion(vis, ir)
    loss = fusion_loss(weights, fused, sources, grad_weight)
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
