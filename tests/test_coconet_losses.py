"""CoCoNet losses: SSIM, entropy, data-driven weights, the stage-1 loss and the coupled contrastive loss."""

import math

import pytest
import torch

from training.coconet.losses import adaptive_weights, ContrastFeatures, contrastive_term, \
    coupled_contrastive_loss, entropy_per_sample, foreground, gaussian_window, ssim_per_sample, stage1_loss

IGNORE = 255


def textured(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def test_gaussian_window_is_normalised_and_peaks_in_the_middle():
    w = gaussian_window()
    assert w.shape == (1, 1, 11, 11)
    assert float(w.sum()) == pytest.approx(1.0)
    assert int(w.flatten().argmax()) == 60


def test_ssim_is_one_for_identical_images_and_lower_otherwise():
    a = textured()
    torch.testing.assert_close(ssim_per_sample(a, a), torch.ones(2))
    noisy = (a + 0.3 * textured(seed=1)).clamp(0, 1)
    s = ssim_per_sample(a, noisy)
    assert torch.all(s < 0.97) and torch.all(s > 0.5)
    independent = ssim_per_sample(a, textured(seed=2))      # no shared structure but the zero border
    assert float(independent.abs().max()) < 0.25
    assert float(ssim_per_sample(a, 1 - a).mean()) < 0.0          # inverted structure: negative SSIM


def test_entropy_of_known_histograms():
    flat = torch.full((1, 1, 16, 16), 0.5)
    two = torch.zeros(1, 1, 16, 16)
    two[..., :8] = 1.0
    ramp = (torch.arange(256, dtype=torch.float32) / 255).view(1, 1, 16, 16)
    e = entropy_per_sample(torch.cat([flat, two, ramp]))
    torch.testing.assert_close(e, torch.tensor([0.0, 1.0, 8.0]))


def test_entropy_is_per_sample_not_accumulated_over_the_batch():
    ramp = (torch.arange(256, dtype=torch.float32) / 255).view(1, 1, 16, 16)
    flat = torch.full((1, 1, 16, 16), 0.5)
    assert float(entropy_per_sample(torch.cat([ramp, flat]))[1]) == 0.0


def test_adaptive_weights_sum_to_one_and_favour_the_richer_source():
    rich = textured(3)
    flat = torch.full_like(rich, 0.4)
    flat[..., :4, :] = 0.6       # some structure, so the gradient and entropy are not zero
    w_grad, w_ent = adaptive_weights(rich, flat)
    assert w_grad.shape == w_ent.shape == (2, 3)
    torch.testing.assert_close(w_grad.sum(0), torch.ones(3))
    torch.testing.assert_close(w_ent.sum(0), torch.ones(3))
    assert torch.all(w_grad[0] > w_grad[1]) and torch.all(w_ent[0] > w_ent[1])
    # temperature 0.5 on shares that sum to 1: the weights stay within softmax(2, 0) = 0.881 / 0.119
    assert float(w_grad.max()) <= 1 / (1 + math.exp(-2)) + 1e-6
    w_same, _ = adaptive_weights(rich, rich)
    torch.testing.assert_close(w_same, torch.full((2, 3), 0.5))


def test_adaptive_weights_carry_no_gradient():
    vis = textured().requires_grad_(True)
    w_grad, w_ent = adaptive_weights(vis, textured(seed=2))
    assert not w_grad.requires_grad and not w_ent.requires_grad


def test_stage1_loss_terms():
    vis, ir = textured(seed=3), textured(seed=4)
    loss_vis, parts = stage1_loss(vis, vis, ir)
    w_grad, w_ent = adaptive_weights(vis, ir)
    expected_mse = float((w_ent[1] * 4 * (vis - ir).pow(2).flatten(1).mean(1)).mean())
    expected_ssim = float((w_grad[1] * (1 - ssim_per_sample(ir, vis))).mean())    # SSIM(vis, vis) = 1
    assert parts['l_mse'] == pytest.approx(expected_mse, rel=1e-5)
    assert parts['l_ssim'] == pytest.approx(expected_ssim, rel=1e-5)
    assert float(loss_vis) == pytest.approx(20 * expected_ssim + expected_mse, rel=1e-5)
    loss_zero, _ = stage1_loss(vis, vis, vis)
    assert float(loss_zero) == pytest.approx(0.0, abs=1e-5)
    fused = ((vis + ir) / 2).requires_grad_(True)
    stage1_loss(fused, vis, ir)[0].backward()
    assert fused.grad is not None and float(fused.grad.abs().sum()) > 0


@pytest.fixture(scope='module')
def phi() -> ContrastFeatures:
    torch.manual_seed(0)
    return ContrastFeatures().eval()


def test_contrastive_term_is_small_at_the_positive_and_large_at_a_negative(phi):
    pos, neg = textured(1, 32, 5) * 2 - 1, textured(1, 32, 6) * 2 - 1
    near = contrastive_term(phi, pos, pos, [neg, neg, neg])
    far = contrastive_term(phi, neg, pos, [neg, pos * 0.5, neg])
    assert float(near) == 0.0
    assert float(far) > 0.1


def test_contrastive_gradient_pulls_the_anchor_towards_the_positive(phi):
    pos, neg = textured(1, 32, 7) * 2 - 1, textured(1, 32, 8) * 2 - 1
    anchor = ((pos + neg) / 2).requires_grad_(True)
    before = float(contrastive_term(phi, anchor, pos, [neg, neg, neg]).detach())
    optimizer = torch.optim.Adam([anchor], lr=0.02)
    for _ in range(20):
        loss = contrastive_term(phi, anchor, pos, [neg, neg, neg])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(contrastive_term(phi, anchor, pos, [neg, neg, neg]).detach()) < 0.8 * before
    assert float((anchor.detach() - pos).abs().mean()) < float(((pos + neg) / 2 - pos).abs().mean())


def test_foreground_masks_from_box_ids_and_ignore():
    masks = torch.zeros(3, 4, 4, dtype=torch.uint8)
    masks[0, :2, :2] = 2
    masks[2] = IGNORE
    m, known = foreground(masks, IGNORE)
    assert known.tolist() == [True, True, False]
    assert float(m[0].sum()) == 4.0 and float(m[1].sum()) == 0.0 and float(m[2].sum()) == 0.0


def test_coupled_loss_uses_only_samples_that_can_carry_each_term(phi):
    vis, ir = textured(4, 32, 9), textured(4, 32, 10)
    masks = torch.full((4, 32, 32), IGNORE, dtype=torch.uint8)
    fused = ((vis + ir) / 2).requires_grad_(True)
    loss, parts = coupled_contrastive_loss(phi, fused, vis, ir, masks, IGNORE)
    assert parts == {'l_fg': 0.0, 'l_bg': 0.0} and float(loss.detach()) == 0.0
    loss.backward()                    # the zero keeps the graph
    masks[:] = 0                       # known, all background: only L_bg
    _, parts = coupled_contrastive_loss(phi, fused, vis, ir, masks, IGNORE)
    assert parts['l_fg'] == 0.0 and parts['l_bg'] > 0.0
    masks[1, 8:20, 8:20] = 1           # one sample with an object: L_fg too
    loss, parts = coupled_contrastive_loss(phi, fused, vis, ir, masks, IGNORE)
    assert parts['l_fg'] > 0.0 and parts['l_bg'] > 0.0
    with pytest.raises(ValueError, match='at least 3 pairs'):
        coupled_contrastive_loss(phi, fused[:2], vis[:2], ir[:2], masks[:2], IGNORE)


def test_coupled_loss_prefers_ir_on_objects_and_visible_elsewhere(phi):
    vis, ir = textured(3, 32, 11), textured(3, 32, 12)
    masks = torch.zeros(3, 32, 32, dtype=torch.uint8)
    masks[:, 8:24, 8:24] = 1
    m = masks[:, None].float()
    right = ir * m + vis * (1 - m)          # IR on the object, visible around it
    wrong = vis * m + ir * (1 - m)
    good, _ = coupled_contrastive_loss(phi, right, vis, ir, masks, IGNORE)
    bad, _ = coupled_contrastive_loss(phi, wrong, vis, ir, masks, IGNORE)
    assert float(good) == pytest.approx(0.0, abs=1e-6) and float(bad) > 0.5
