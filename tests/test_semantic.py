"""SeAFusion joint adaptive training: segmenter, OHEM loss, stage schedule, resume, export with a class map."""

import csv

import numpy as np
import pytest
import torch

from fusion_ros.core.model_card import load_card
from fusion_ros.evaluation.mask_io import BOX_CLASSES
from fusion_ros.tensorrt.onnx_support import check_for_tensorrt
from training.common.checkpoint import load_checkpoint
from training.common.config import config_from_dict
from training.common.data import CropSampler, load_sources
from fusion_ros.networks.segmenter import Segmenter
from training.common.losses import ohem_cross_entropy, semantic_loss
from training.seafusion.semantic import JointTrainer, seg_lr
from tests.msrs_fixtures import msrs_source


def tiny(tmp_path, out: str, **overrides):
    raw = {'sources': [msrs_source(tmp_path / 'data')], 'val_source': 'msrs', 'val_count': 1, 'val_eval_count': 1,
           'crop': 32, 'batch_size': 2, 'seg_batch_size': 2, 'stages': 2, 'fusion_steps': 3, 'seg_steps': 3,
           'log_every': 1, 'ckpt_every': 2, 'threads': 1, 'out_dir': str(tmp_path / out)}
    return config_from_dict({**raw, **overrides})


def test_ohem_keeps_hard_pixels_and_ignores_unlabelled():
    logits = torch.tensor([[[[4.0, -4.0]], [[-4.0, 4.0]]]])        # pixel 0 says class 0, pixel 1 says class 1
    right, wrong = torch.tensor([[[0, 1]]]), torch.tensor([[[1, 0]]])
    assert float(ohem_cross_entropy(logits, wrong)) == pytest.approx(8.0, abs=1e-3)
    assert float(ohem_cross_entropy(logits, right)) < 1e-3            # easy pixels: only the n_min hardest kept
    assert float(ohem_cross_entropy(logits, torch.tensor([[[255, 255]]]))) == 0.0


def test_segmenter_learns_box_masks_from_scratch(tmp_path):
    torch.manual_seed(0)
    pairs = load_sources(tiny(tmp_path, 'unused').sources)
    sampler = CropSampler(pairs, crop=48, seed=0)
    batches = [tuple(torch.from_numpy(a) for a in sampler.batch(4)) for _ in range(3)]
    model = Segmenter(len(BOX_CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def mean_loss() -> float:   # batch statistics: 40 steps are too few to settle BatchNorm's running ones
        with torch.no_grad():
            return sum(float(semantic_loss(model, v, m)) for v, _, m in batches) / 3

    before = mean_loss()
    for step in range(40):
        vis, _, masks = batches[step % 3]
        loss = semantic_loss(model, vis, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mean_loss() < 0.7 * before


def test_stage_schedule_semantic_weight_and_frozen_segmenter(tmp_path):
    trainer = JointTrainer(tiny(tmp_path, 'run'))
    trainer.run()
    with (tmp_path / 'run' / 'train_log.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r['stage'], r['phase']) for r in rows] == [('0', 'fusion')] * 3 + [('0', 'segmenter')] * 3 + \
        [('1', 'fusion')] * 3 + [('1', 'segmenter')] * 3
    assert all(r['l_sem'] == '' for r in rows[:6]) and all(r['l_sem'] != '' for r in rows[6:9])
    with (tmp_path / 'run' / 'val_log.csv').open() as handle:
        val = list(csv.DictReader(handle))
    assert [v['stage'] for v in val] == ['0', '1'] and {'miou_visible', 'miou_infrared', 'miou_fused'} <= set(val[0])
    ckpt = load_checkpoint(tmp_path / 'run' / 'last.pt')
    assert (ckpt['stage'], ckpt['classes']) == (2, list(BOX_CLASSES))


def test_fusion_phase_leaves_the_segmenter_untouched(tmp_path):
    trainer = JointTrainer(tiny(tmp_path, 'run', stages=2))
    trainer.stage, trainer.phase = 1, 'fusion'
    trainer._set_frozen()
    before = {k: v.clone() for k, v in trainer.segmenter.state_dict().items()}
    fusion_before = [p.clone() for p in trainer.fusion.parameters()]
    parts = trainer.fusion_step()
    assert parts['l_sem'] > 0
    for key, value in trainer.segmenter.state_dict().items():
        torch.testing.assert_close(value, before[key])                   # BatchNorm statistics included
    assert any(not torch.equal(a, b) for a, b in zip(fusion_before, trainer.fusion.parameters()))


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    JointTrainer(tiny(tmp_path, 'straight')).run()
    JointTrainer(tiny(tmp_path, 'split', stages=1)).run()
    resumed = JointTrainer(tiny(tmp_path, 'split'))
    resumed.restore(load_checkpoint(tmp_path / 'split' / 'last.pt'))
    resumed.run()
    a, b = (load_checkpoint(tmp_path / name / 'last.pt') for name in ('straight', 'split'))
    for part in ('model', 'segmenter'):
        for key, value in a[part].items():
            torch.testing.assert_close(b[part][key], value, rtol=1e-5, atol=1e-6)


def test_warm_up_then_poly_decay():
    config = config_from_dict({'seg_lr': 0.01, 'seg_steps': 250})
    assert seg_lr(0, config) == pytest.approx(0.01 / 50)
    assert seg_lr(49, config) == pytest.approx(0.01)
    assert seg_lr(150, config) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert seg_lr(250, config) == pytest.approx(0.0)


def test_export_adds_class_map_and_standalone_segmenter(exported_seg):
    uint8_path, float_path = exported_seg
    card = load_card(uint8_path)
    assert card.mask == {'output': 'classes', 'kind': 'classes', 'classes': list(BOX_CLASSES)}
    assert [t.name for t in card.outputs] == ['fused_bgr', 'classes']
    assert card.provenance['parity']['mask_uint8_diff'] <= 1e-3
    assert card.provenance['training']['command'].startswith('python -m training.seafusion.semantic')
    segmenter = uint8_path.with_name('seafusion_seg_segmenter.onnx')
    seg_card = load_card(segmenter)
    assert seg_card.graph == 'segment' and [t.name for t in seg_card.inputs] == ['luma']
    for path in (uint8_path, float_path, segmenter):
        assert check_for_tensorrt(path) == []
    import onnxruntime as ort
    classes = ort.InferenceSession(str(segmenter)).run(None, {'luma': np.zeros((33, 47), np.uint8)})[0]
    assert classes.shape == (33, 47) and classes.dtype == np.uint8 and classes.max() < len(BOX_CLASSES)


def test_plain_weighted_cross_entropy_option():
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = Segmenter(len(BOX_CLASSES)).eval()
    y, masks = torch.rand(2, 1, 32, 32), torch.randint(0, 4, (2, 32, 32), dtype=torch.uint8)
    weight = torch.tensor([0.2, 1.0, 1.0, 1.0])
    with torch.no_grad():
        main, aux = model(y)
        expected = F.cross_entropy(main, masks.long(), weight=weight) + 0.1 * F.cross_entropy(aux, masks.long(),
                                                                                              weight=weight)
        got = semantic_loss(model, y, masks, weight, ohem=False)
        unlabelled = semantic_loss(model, y, torch.full_like(masks, 255), weight, ohem=False)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    assert float(unlabelled) == 0.0
    config = config_from_dict({'seg_ohem': False, 'seg_class_weights': [0.2, 1, 1, 1]})
    assert config.seg_class_weights == [0.2, 1, 1, 1] and config.seg_ohem is False


def test_init_from_makes_the_checkpoint_stage_0_and_counts_only_steps_run(tmp_path):
    from training.common.checkpoint import save_checkpoint
    from fusion_ros.networks.seafusion import SeAFusion
    torch.manual_seed(1)
    content = SeAFusion()
    save_checkpoint(tmp_path / 'content.pt', {'model': content.state_dict()})
    trainer = JointTrainer(tiny(tmp_path, 'run', init_from=str(tmp_path / 'content.pt'), stages=1))
    assert (trainer.stage, trainer.phase, trainer._total_steps()) == (0, 'segmenter', 0)
    for key, value in content.state_dict().items():
        torch.testing.assert_close(trainer.fusion.state_dict()[key], value)
    trainer.run()
    assert load_checkpoint(tmp_path / 'run' / 'last.pt')['step'] == 3              # 3 segmenter steps, no fusion
