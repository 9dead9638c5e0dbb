"""The target-aware SeAFusion objective (issue 12): its two terms, crops around targets, and a short run."""

import csv
import dataclasses

import numpy as np
import pytest
import torch

from training.common.config import config_from_dict
from training.common.data import CropSampler, load_sources
from training.common.losses import target_losses
from training.common.objectives import objective_for
from training.common.train import train
from tests.msrs_fixtures import msrs_source


def target_batch():
    """Two crops: a warm target on a lit background (IR shows it better), and one with no target."""
    vis = torch.full((2, 1, 32, 32), 0.8)
    ir = torch.full((2, 1, 32, 32), 0.3)
    ir[:, :, 10:20, 12:18] = 0.9
    vis[:, :, 10:20, 12:18] = 0.7
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[0, 10:20, 12:18] = 1
    masks[1] = 255                                   # a source without masks
    return vis, ir, masks


def test_copying_the_better_source_costs_nothing():
    vis, ir, masks = target_batch()
    follow, keep = target_losses(ir.clone(), vis, ir, masks, ring=4)
    assert float(follow) == pytest.approx(0.0) and float(keep) == pytest.approx(0.0)


def test_pixel_max_loses_the_targets_contrast_and_is_penalised():
    vis, ir, masks = target_batch()
    fused = torch.maximum(vis, ir)                   # target 0.9 on 0.8: 0.1 of the IR's 0.6 contrast
    follow, keep = target_losses(fused, vis, ir, masks, ring=4)
    assert float(keep) == pytest.approx(1 - 0.1 / 0.6, abs=1e-5)
    assert float(follow) > 0.2


def test_more_contrast_than_the_sources_is_not_penalised():
    vis, ir, masks = target_batch()
    fused = ir.clone()
    fused[:, :, 10:20, 12:18] = 1.0                  # 0.7 > 0.6 of the IR
    assert float(target_losses(fused, vis, ir, masks, ring=4)[1]) == pytest.approx(0.0)


def test_no_target_adds_nothing_but_keeps_the_graph():
    vis, ir, masks = target_batch()
    fused = torch.rand_like(vis, requires_grad=True)
    follow, keep = target_losses(fused, vis, ir, torch.full_like(masks, 255), ring=4)
    (follow + keep).backward()
    assert float(follow.detach()) == 0.0 and float(keep.detach()) == 0.0 and fused.grad is not None


def test_crops_around_targets_hold_a_target(tmp_path):
    pairs = load_sources(config_from_dict({'sources': [msrs_source(tmp_path)]}).sources)
    sampler = CropSampler(pairs, crop=24, seed=0, target_fraction=1.0)
    _, _, masks = sampler.batch(16)
    assert all(((m > 0) & (m != 255)).any() for m in masks)
    uniform_a = CropSampler(pairs, crop=24, seed=0).batch(4)
    uniform_b = CropSampler(pairs, crop=24, seed=0, target_fraction=0.0).batch(4)
    assert all(np.array_equal(a, b) for a, b in zip(uniform_a, uniform_b))
    with pytest.raises(ValueError, match='no training pair has a labelled target'):
        CropSampler([dataclasses.replace(p, mask=np.zeros_like(p.mask)) for p in pairs], crop=24, seed=0,
                    target_fraction=0.5)


def test_a_short_run_logs_both_terms(tmp_path):
    config = config_from_dict({'sources': [msrs_source(tmp_path / 'data')], 'objective': 'seafusion_target',
                               'val_count': 1, 'val_eval_count': 1, 'crop': 32, 'batch_size': 2, 'max_steps': 4,
                               'log_every': 1, 'val_every': 1000, 'ckpt_every': 2, 'threads': 1,
                               'target_crops': 0.5, 'out_dir': str(tmp_path / 'run')})
    assert objective_for(config).loss.__name__ == 'seafusion_target_loss'
    train(config)
    rows = list(csv.DictReader((tmp_path / 'run' / 'train_log.csv').open()))
    assert len(rows) == 4 and {'l_follow', 'l_keep', 'l_int', 'l_texture'} <= set(rows[0])
    assert any(float(r['l_follow']) > 0 for r in rows)
