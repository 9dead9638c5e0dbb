"""SGFusion: architecture, fusion rule, training on box masks, export with a saliency output."""

import csv

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion_ros.core.color import bgr_to_ycrcb, to_unit
from fusion_ros.core.model_card import load_card
from fusion_ros.tensorrt.onnx_support import check_for_tensorrt
from training.common.checkpoint import load_checkpoint
from training.common.config import config_from_dict, config_to_dict, DataSource
from training.common.data import CropSampler, load_sources
from fusion_ros.networks.graphs import FusionCore, Uint8Graph
from fusion_ros.networks.sgfusion import SGFusion
from training.deploy.export import FLOAT_TOL, load_core
from training.deploy.samples import load_samples
from training.common.objectives import SingleImageTrainer, sgfusion_loss
from training.common.train import train
from tests.model_fixtures import PAIRS
from tests.msrs_fixtures import msrs_source


def test_odd_sizes_are_padded_and_cropped_back():
    with torch.no_grad():
        fused, saliency = SGFusion()(torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53))
    assert fused.shape == saliency.shape == (1, 1, 37, 53)
    assert 0.0 <= float(fused.min()) and float(saliency.max()) <= 1.0


def test_fusion_weights_follow_the_saliency_entry_activity():
    """A source whose features excite the saliency decoder's first conv more gets more weight."""
    torch.manual_seed(0)
    model = SGFusion()
    a = [torch.rand(1, c, 4, 4) for c in (16, 32, 64, 128)]
    b = [torch.zeros_like(t) for t in a]
    for entry in model.saliency.entry:
        torch.nn.init.zeros_(entry.bias)
    fused = model.fuse_features(a, b)
    for fa, fb, f in zip(a, b, fused):
        assert torch.all(f <= fa + 1e-6) and torch.all(f > 0.5 * fa)   # weight of a in (0.5, 1]
    same = model.fuse_features(a, a)
    for fa, f in zip(a, same):
        torch.testing.assert_close(f, fa)                                # equal activity: weights 1/2 each


def test_loss_falls_on_tiny_crops_with_box_masks(tmp_path):
    torch.manual_seed(0)
    config = config_from_dict({'method': 'sgfusion', 'sources': [msrs_source(tmp_path)]})
    pairs = load_sources(config.sources)
    sampler = CropSampler(pairs, crop=32, seed=0)
    batches = [tuple(torch.from_numpy(a) for a in sampler.batch(4)) for _ in range(4)]
    assert any((m != 255).all() and m.max() > 0 for _, _, m in batches)   # box masks reach the loss
    model = SingleImageTrainer(SGFusion())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def mean_loss() -> float:
        with torch.no_grad():
            return sum(float(sgfusion_loss(model(v, i), v, i, m, config)[0]) for v, i, m in batches) / 4

    before = mean_loss()
    for step in range(60):
        vis, ir, masks = batches[step % 4]
        loss, parts = sgfusion_loss(model(vis, ir), vis, ir, masks, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(parts) == {'l_rec', 'l_bce'}
    assert mean_loss() < 0.7 * before


def test_bce_is_skipped_where_no_mask_exists():
    config = config_from_dict({'method': 'sgfusion'})
    model = SingleImageTrainer(SGFusion())
    vis, ir = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    _, parts = sgfusion_loss(model(vis, ir), vis, ir, torch.full((2, 16, 16), 255, dtype=torch.uint8), config)
    assert parts['l_bce'] == 0.0


def test_training_loop_runs_sgfusion_with_masks(tmp_path):
    config = config_from_dict({
        'method': 'sgfusion', 'sources': [msrs_source(tmp_path / 'data'),
                                          {'name': 'samples', 'ir': str(PAIRS / 'ir'), 'vis': str(PAIRS / 'vi')}],
        'val_source': 'msrs', 'val_count': 1, 'val_eval_count': 1, 'crop': 32, 'batch_size': 2, 'max_steps': 3,
        'log_every': 1, 'val_every': 3, 'ckpt_every': 3, 'threads': 1, 'out_dir': str(tmp_path / 'run')})
    train(config)
    ckpt = load_checkpoint(tmp_path / 'run' / 'last.pt')
    assert ckpt['step'] == 3 and ckpt['config']['method'] == 'sgfusion'
    log = (tmp_path / 'run' / 'train_log.csv').read_text()
    assert 'l_rec' in log and 'l_bce' in log
    assert 'Qabf' in (tmp_path / 'run' / 'val_log.csv').read_text()


def test_missing_mask_file_is_named(tmp_path):
    source = msrs_source(tmp_path)
    (tmp_path / 'boxes').mkdir()
    with pytest.raises(FileNotFoundError, match='00091D.txt'):
        load_sources([DataSource(**{**source, 'masks': str(tmp_path / 'boxes')})])


def test_export_has_saliency_output_parity_and_tensorrt_ops(exported_sgfusion):
    uint8_path, float_path = exported_sgfusion
    card = load_card(uint8_path)
    assert card.mask == {'output': 'saliency', 'kind': 'saliency', 'classes': ['background', 'salient']}
    assert [t.name for t in card.outputs] == ['fused_bgr', 'saliency']
    assert [t.name for t in load_card(float_path).outputs] == ['fused_y', 'saliency']
    assert card.provenance['parity']['mask_uint8_diff'] <= 1
    for path in exported_sgfusion:
        assert check_for_tensorrt(path) == []
        assert 'Pad' in {n.op_type for n in onnx.load(str(path)).graph.node}   # reflect padding inside the graph


def test_parity_on_a_size_that_is_not_a_multiple_of_8(exported_sgfusion, tmp_path):
    uint8_path, float_path = exported_sgfusion
    core, _ = load_core(uint8_path.parent / 'seeded_sgfusion.pt')
    name, ir, vis = load_samples(PAIRS, limit=1)[0]
    ir, vis = ir[:123, :157].copy(), vis[:123, :157].copy()
    y = bgr_to_ycrcb(to_unit(vis))[0].astype(np.float32)[None, None]
    with torch.no_grad():
        ref_y, ref_s = (t.numpy() for t in core(torch.from_numpy(y), torch.from_numpy(to_unit(ir)[None, None])))
        graph = Uint8Graph(FusionCore(core.net))
        ref_bgr, ref_mask = (t.numpy() for t in graph(torch.from_numpy(ir), torch.from_numpy(vis)))
    got_y, got_s = ort.InferenceSession(str(float_path)).run(None, {'visible_y': y, 'ir': to_unit(ir)[None, None]})
    got_bgr, got_mask = ort.InferenceSession(str(uint8_path)).run(None, {'ir': ir, 'visible_bgr': vis})
    assert got_y.shape == got_s.shape == (1, 1, 123, 157) and got_mask.shape == (123, 157)
    assert np.abs(got_y - ref_y).max() <= FLOAT_TOL and np.abs(got_s - ref_s).max() <= FLOAT_TOL
    assert np.abs(got_bgr.astype(int) - ref_bgr.astype(int)).max() <= 1
    assert np.abs(got_mask.astype(int) - ref_mask.astype(int)).max() <= 1


def test_fused_decoder_stage_trains_only_the_reconstruction_decoder(tmp_path):
    first = config_from_dict({
        'method': 'sgfusion', 'sources': [msrs_source(tmp_path / 'data')], 'val_source': 'msrs', 'val_count': 1,
        'val_eval_count': 1, 'crop': 32, 'batch_size': 2, 'max_steps': 2, 'log_every': 1, 'val_every': 100,
        'ckpt_every': 2, 'threads': 1, 'out_dir': str(tmp_path / 'stage1')})
    train(first)
    second = config_from_dict({**config_to_dict(first), 'objective': 'sgfusion_fused_decoder', 'max_steps': 12,
                               'init_from': str(tmp_path / 'stage1' / 'last.pt'), 'lr': 1e-3, 'min_lr': 1e-3,
                               'out_dir': str(tmp_path / 'stage2')})
    train(second)
    before = load_checkpoint(tmp_path / 'stage1' / 'last.pt')['model']
    after = load_checkpoint(tmp_path / 'stage2' / 'last.pt')['model']
    for key, value in after.items():
        changed = not torch.equal(value, before[key])
        assert changed == key.startswith('reconstruction.'), key
    with (tmp_path / 'stage2' / 'train_log.csv').open() as handle:
        losses = [float(row['loss']) for row in csv.DictReader(handle)]
    assert 'l_texture' in (tmp_path / 'stage2' / 'train_log.csv').read_text()    # content loss on the fused output
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
