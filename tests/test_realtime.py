"""Real-time student (issue 13): network, teacher images, distillation objective, export."""

import csv
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fusion_ros.core.color import bgr_to_ycrcb, to_unit
from fusion_ros.core.imageio import read_image
from fusion_ros.core.model_card import load_card, ModelCard, save_card, sha256_of
from fusion_ros.networks.graphs import FusionCore, Uint8Graph
from fusion_ros.networks.realtime import conv_macs, RealtimeFusion
from fusion_ros.networks.registry import build_model
from training.common.checkpoint import save_checkpoint
from training.common.config import config_from_dict, config_to_dict, TrainConfig
from training.common.data import CropSampler, load_sources, split_holdout
from training.realtime.distill import distill_loss, DistillTrainer, fill_teacher_folders, teacher_distance
from training.deploy.export import export, float_specs, FLOAT_TOL
from training.deploy.samples import load_samples
from training.common.train import train
from tests.model_fixtures import PAIRS


def max_teacher_graph(folder: Path, op: str = 'Max') -> Path:
    """A float graph with a card computing max (or min) of visible_y and ir: a teacher whose every output is known."""
    from onnx import helper, save, TensorProto
    planes = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, 'H', 'W']) for n in ('visible_y', 'ir')]
    out = [helper.make_tensor_value_info('fused_y', TensorProto.FLOAT, [1, 1, 'H', 'W'])]
    graph = helper.make_graph([helper.make_node(op, ['visible_y', 'ir'], ['fused_y'])], op, planes, out)
    path = folder / f'{op.lower()}_float.onnx'
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=9), str(path))
    inputs, outputs = float_specs()
    save_card(ModelCard(method=op.lower(), version='test', graph='float', onnx=path.name, sha256=sha256_of(path),
                        opset=17, inputs=inputs, outputs=outputs), path.with_suffix('.json'))
    return path


def distill_config(tmp_path: Path, teacher: str, **overrides):
    raw = {'method': 'realtime', 'objective': 'realtime_distill', 'teacher': teacher,
           'sources': [{'name': 'samples', 'ir': str(PAIRS / 'ir'), 'vis': str(PAIRS / 'vi'),
                        'teacher': str(tmp_path / 'teacher')}],
           'val_source': 'samples', 'val_count': 1, 'val_eval_count': 1, 'crop': 32, 'batch_size': 2,
           'max_steps': 4, 'log_every': 1, 'val_every': 4, 'ckpt_every': 4, 'threads': 1,
           'out_dir': str(tmp_path / 'run')}
    return config_from_dict({**raw, **overrides})


def test_any_size_in_unit_range_and_starts_as_the_pixel_max():
    net = build_model('realtime').eval()
    vis, ir = torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53)
    with torch.no_grad():
        out = net(vis, ir)
    assert out.shape == (1, 1, 37, 53)
    torch.testing.assert_close(out, torch.maximum(vis, ir))     # zero-initialised head: m = 1, a = b = c = 0
    with torch.no_grad():
        net.head.weight.normal_(std=1.0)
        wild = net(vis * 4 - 2, ir)
    assert float(wild.min()) >= 0.0 and float(wild.max()) <= 1.0


def test_cost_counted_from_the_layers():
    net = RealtimeFusion()
    assert sum(p.numel() for p in net.parameters()) == 68_964
    macs = conv_macs(net, 480, 640)
    assert 0.4e9 < macs < 0.6e9
    assert conv_macs(net, 960, 1280) == pytest.approx(4 * macs, rel=0.01)   # linear in pixels


def test_teacher_images_are_written_once_and_cropped_with_the_sources(tmp_path):
    config = distill_config(tmp_path, str(max_teacher_graph(tmp_path)))
    assert fill_teacher_folders(config, threads=1, log=lambda _: None) == 7
    assert fill_teacher_folders(config, threads=1, log=lambda _: None) == 0      # nothing left to do
    plane = read_image(tmp_path / 'teacher' / '00091D.png')
    assert plane.dtype == np.uint16 and plane.shape == (480, 640)
    pairs = load_sources(config.sources)
    for pair in pairs:
        np.testing.assert_allclose(pair.teacher, np.maximum(pair.vis_y, pair.ir), atol=1 / 65535)
    vis, ir, _ = CropSampler(pairs, 32, seed=0).batch(6)
    assert vis.shape == (6, 2, 32, 32)
    np.testing.assert_allclose(vis[:, 1], np.maximum(vis[:, 0], ir[:, 0]), atol=1 / 65535)   # same window, flips


def test_distance_to_the_teacher_on_held_out_pairs(tmp_path):
    config = distill_config(tmp_path, str(max_teacher_graph(tmp_path)), val_count=2)
    fill_teacher_folders(config, threads=1, log=lambda _: None)
    same = teacher_distance(config, max_teacher_graph(tmp_path))
    assert same['pairs'] == 2 and same['model'] < 0.01 and same['pixel_max'] < 0.01    # the teacher is the max
    _, held_out = split_holdout(load_sources(config.sources), 'samples', 2, 0)
    expected = np.mean([np.abs(p.vis_y - p.ir).mean() for p in held_out]) * 255    # |min - max| = |Y - IR|
    assert teacher_distance(config, max_teacher_graph(tmp_path, 'Min'))['model'] == pytest.approx(expected, abs=0.01)


def test_missing_teacher_is_a_named_error(tmp_path):
    config = distill_config(tmp_path, '')
    with pytest.raises(ValueError, match='no teacher graph'):
        fill_teacher_folders(config, log=lambda _: None)
    with pytest.raises(FileNotFoundError, match='no teacher image'):
        load_sources(config.sources)


def test_distill_loss_adds_l1_to_the_teacher_and_is_content_only_without_one():
    config = config_from_dict({'distill_weight': 10.0})
    trainer = DistillTrainer(RealtimeFusion())
    vis = torch.rand(2, 1, 24, 24)
    ir = torch.rand(2, 1, 24, 24)
    teacher = torch.rand(2, 1, 24, 24)
    student, passed = trainer(torch.cat([vis, teacher], 1), ir)
    assert torch.equal(passed, teacher)
    total, parts = distill_loss((student, passed), torch.cat([vis, teacher], 1), ir, None, config)
    alone, content_parts = distill_loss(trainer(vis, ir), vis, ir, None, config)
    assert set(content_parts) == {'l_int', 'l_texture'} and 'l_distill' in parts
    assert float(total.detach()) == pytest.approx(float(alone.detach()) + 10.0 * parts['l_distill'], rel=1e-5)


def test_distill_run_fills_the_teacher_and_logs_its_term(tmp_path):
    config = distill_config(tmp_path, str(max_teacher_graph(tmp_path)))
    train(config)                       # the objective fills the teacher folder before training starts
    with (tmp_path / 'run' / 'train_log.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(float(r['l_distill']) > 0 for r in rows)
    assert (tmp_path / 'run' / 'val_log.csv').is_file()


def test_export_matches_pytorch_at_an_odd_size(tmp_path):
    torch.manual_seed(0)
    net = RealtimeFusion()
    with torch.no_grad():
        net.head.weight.normal_(std=0.1)    # a non-trivial blend instead of the initial pixel max
    state = {'model': net.state_dict(), 'config': config_to_dict(TrainConfig(method='realtime')), 'step': 0,
             'config_path': 'test'}
    save_checkpoint(tmp_path / 'seeded.pt', state)
    uint8_path, float_path = export(tmp_path / 'seeded.pt', tmp_path / 'realtime.onnx', PAIRS, sample_limit=2)
    assert load_card(uint8_path).provenance['parameters'] == 68_964
    _, ir, vis = load_samples(PAIRS, limit=1)[0]
    ir, vis = ir[:123, :157].copy(), vis[:123, :157].copy()
    y = bgr_to_ycrcb(to_unit(vis))[0].astype(np.float32)[None, None]
    irf = to_unit(ir)[None, None]
    net.eval()
    with torch.no_grad():
        ref_y = net(torch.from_numpy(y), torch.from_numpy(irf)).numpy()
        ref_bgr = Uint8Graph(FusionCore(net))(torch.from_numpy(ir), torch.from_numpy(vis))[0].numpy()
    got_y = ort.InferenceSession(str(float_path)).run(None, {'visible_y': y, 'ir': irf})[0]
    got_bgr = ort.InferenceSession(str(uint8_path)).run(None, {'ir': ir, 'visible_bgr': vis})[0]
    assert got_bgr.shape == (123, 157, 3)
    assert np.abs(got_y - ref_y).max() <= FLOAT_TOL
    assert np.abs(got_bgr.astype(int) - ref_bgr.astype(int)).max() <= 1
    assert np.abs(ref_y - np.maximum(y, irf)).max() > 0.01      # really not the pixel max any more
