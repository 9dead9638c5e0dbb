"""SeAFusion training: architecture, loss, config handling, resume and DDP (gloo, 2 CPU processes)."""

import csv
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from training.common.checkpoint import load_checkpoint
from training.common.config import DataSource, config_from_dict, load_config
from training.common.data import CropSampler, load_sources, split_holdout
from training.common.losses import content_loss
from fusion_ros.networks.seafusion import SeAFusion
from training.common.train import append_csv, train
from training.common.run_log import logged_wall_seconds, run_chain

PAIRS = Path(__file__).parent / 'data' / 'pairs'
REPO = Path(__file__).resolve().parent.parent


def tiny_config(out_dir: Path, **overrides):
    raw = {'sources': [{'name': 'samples', 'ir': str(PAIRS / 'ir'), 'vis': str(PAIRS / 'vi')}],
           'val_source': 'samples', 'val_count': 1, 'val_eval_count': 1, 'crop': 32, 'batch_size': 2,
           'max_steps': 6, 'log_every': 1, 'val_every': 1000, 'ckpt_every': 2, 'threads': 1, 'out_dir': str(out_dir)}
    raw.update(overrides)
    return config_from_dict(raw)


def test_parameter_count_matches_the_released_network():
    assert sum(p.numel() for p in SeAFusion().parameters()) == 166_657


def test_any_input_size_passes_and_output_is_in_unit_range():
    with torch.no_grad():
        out = SeAFusion()(torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53))
    assert out.shape == (1, 1, 37, 53)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_content_loss_is_zero_only_for_the_target():
    vis = torch.zeros(1, 1, 8, 8)
    ir = torch.zeros(1, 1, 8, 8)
    ir[..., 2:5, 2:5] = 1.0
    loss, parts = content_loss(torch.maximum(vis, ir), vis, ir)
    assert float(loss) == pytest.approx(0.0)
    worse, _ = content_loss(vis, vis, ir)
    assert float(worse) > 0.1 and set(parts) == {'l_int', 'l_texture'}


def test_loss_falls_on_tiny_crops():
    torch.manual_seed(0)
    pairs = load_sources([DataSource('samples', str(PAIRS / 'ir'), str(PAIRS / 'vi'))])
    sampler = CropSampler(pairs, crop=32, seed=0)
    batches = [tuple(torch.from_numpy(a) for a in sampler.batch(4)) for _ in range(4)]
    model = SeAFusion()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def mean_loss() -> float:
        with torch.no_grad():
            return sum(float(content_loss(model(v, i), v, i)[0]) for v, i, _ in batches) / len(batches)

    before = mean_loss()
    for step in range(40):
        vis, ir, _ = batches[step % len(batches)]
        loss, _ = content_loss(model(vis, ir), vis, ir)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mean_loss() < 0.7 * before


def test_holdout_is_disjoint_and_deterministic():
    pairs = load_sources([DataSource('samples', str(PAIRS / 'ir'), str(PAIRS / 'vi'))])
    train_a, val_a = split_holdout(pairs, 'samples', 2, seed=3)
    train_b, val_b = split_holdout(pairs, 'samples', 2, seed=3)
    assert [p.name for p in val_a] == [p.name for p in val_b]
    assert not {p.name for p in train_a} & {p.name for p in val_a}
    assert len(train_a) + len(val_a) == len(pairs)
    with pytest.raises(ValueError, match='cannot hold out 99 pairs'):
        split_holdout(pairs, 'samples', 99, seed=0)


def test_config_rejects_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(KeyError, match='unknown config key.*batchsize'):
        config_from_dict({'batchsize': 4})
    with pytest.raises(TypeError, match="'crop' must be int"):
        config_from_dict({'crop': 'big'})
    path = tmp_path / 'c.yaml'
    path.write_text('crop: 64\nlr: 1\n')
    config = load_config(path, ['batch_size=3'])
    assert (config.crop, config.lr, config.batch_size) == (64, 1.0, 3)
    with pytest.raises(ValueError, match='key=value'):
        load_config(path, ['batch_size'])


def test_shipped_config_loads():
    config = load_config(REPO / 'training' / 'configs' / 'seafusion.yaml')
    assert config.method == 'seafusion' and config.val_count >= 40


def test_resume_continues_exactly(tmp_path):
    # A constant learning rate keeps the schedule independent of max_steps, so stopping at
    # step 4 and resuming to 6 must reproduce the uninterrupted run.
    constant = {'lr': 1e-3, 'min_lr': 1e-3}
    straight = tiny_config(tmp_path / 'straight', **constant)
    train(straight)
    split = tiny_config(tmp_path / 'split', max_steps=4, **constant)
    train(split)
    resumed = tiny_config(tmp_path / 'split', **constant)
    train(resumed, resume=True)
    a = load_checkpoint(tmp_path / 'straight' / 'last.pt')
    b = load_checkpoint(tmp_path / 'split' / 'last.pt')
    assert a['step'] == b['step'] == 6
    for key, value in a['model'].items():
        torch.testing.assert_close(b['model'][key], value, rtol=1e-5, atol=1e-6)
    with (tmp_path / 'split' / 'train_log.csv').open() as handle:
        steps = [int(row['step']) for row in csv.DictReader(handle)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / 'split' / 'val_log.csv').exists()
    assert (tmp_path / 'split' / 'val_names.txt').read_text().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    cfg = tmp_path / 'ddp.yaml'
    cfg.write_text(
        f"sources: [{{name: samples, ir: '{PAIRS / 'ir'}', vis: '{PAIRS / 'vi'}'}}]\n"
        'val_source: samples\nval_count: 1\nval_eval_count: 1\ncrop: 32\nbatch_size: 2\nmax_steps: 4\n'
        f"log_every: 1\nval_every: 1000\nckpt_every: 2\nthreads: 1\nout_dir: '{tmp_path / 'run'}'\n")
    env = {**os.environ, 'MASTER_ADDR': '127.0.0.1', 'OMP_NUM_THREADS': '1'}
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
         '--master_port', str(free_port()), '-m', 'training.common.train', '--config', str(cfg)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / 'run' / 'last.pt')
    assert ckpt['step'] == 4
    assert load_checkpoint(tmp_path / 'run' / 'best.pt')['step'] == 4     # the only validation, at the end
    assert len(ckpt['sampler_rng']) == 2 and ckpt['sampler_rng'][0] != ckpt['sampler_rng'][1]


def test_validate_links_exactly_the_holdout(tmp_path):
    from training.evaluation.validate import link_holdout
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'val_names.txt').write_text('00091D\nTNO_001\n')
    cfg = tmp_path / 'c.yaml'
    cfg.write_text(f"sources: [{{name: samples, ir: '{PAIRS / 'ir'}', vis: '{PAIRS / 'vi'}'}}]\nval_source: samples\n")
    out = link_holdout(run, cfg, tmp_path / 'pairs')
    assert sorted(p.name for p in (out / 'ir').iterdir()) == ['00091D.png', 'TNO_001.png']
    assert sorted(p.name for p in (out / 'vi').iterdir()) == ['00091D.png', 'TNO_001.png']
    (run / 'val_names.txt').write_text('00091D\nmissing\n')
    with pytest.raises(FileNotFoundError, match='1 held-out pair'):
        link_holdout(run, cfg, tmp_path / 'pairs2')


def test_logged_wall_time_adds_up_the_segments_of_resumed_runs(tmp_path):
    assert logged_wall_seconds([10.0, 20.0, 30.0]) == 30.0
    assert logged_wall_seconds([10.0, 20.0, 5.0, 15.0]) == 35.0          # resumed after 20 s: 20 + 15
    first, second = tmp_path / 'stage1', tmp_path / 'stage2'
    first.mkdir()
    second.mkdir()
    (first / 'train_log.csv').write_text('step,loss,seconds\n25,1.0,60.0\n50,0.9,120.0\n')
    (second / 'train_log.csv').write_text('step,loss,seconds\n10,0.5,30.0\n20,0.4,61.0\n10,0.5,20.0\n30,0.3,50.0\n')
    chain = run_chain({'init_from': str(first / 'last.pt')}, second)
    assert [(c['run'], c['last_logged_step'], c['wall_s']) for c in chain] == [(str(first), 50, 120.0),
                                                                               (str(second), 30, 111.0)]
    assert run_chain({'init_from': str(tmp_path / 'missing' / 'last.pt')}, tmp_path / 'empty') == []


def test_a_run_from_a_shipped_model_stands_on_the_runs_its_card_lists(tmp_path):
    shipped = tmp_path / 'models' / 'realtime.onnx'
    shipped.parent.mkdir()
    shutil.copy(REPO / 'models' / 'realtime.onnx', shipped)
    card = json.loads((REPO / 'models' / 'realtime.json').read_text())
    card['provenance']['training'] = {'runs': [{'run': 'runs/old', 'last_logged_step': 40, 'wall_s': 9.0,
                                                'wall_min': 0.1}]}
    shipped.with_suffix('.json').write_text(json.dumps(card))
    run = tmp_path / 'continued'
    run.mkdir()
    (run / 'train_log.csv').write_text('step,loss,seconds\n10,0.5,30.0\n')
    chain = run_chain({'init_from': str(shipped)}, run)
    assert [c['run'] for c in chain] == ['runs/old', str(run)]


def test_a_log_resumed_with_more_columns_keeps_every_value_under_its_name(tmp_path):
    log = tmp_path / 'val_log.csv'
    append_csv(log, {'step': 1, 'val_loss': 0.5})
    append_csv(log, {'step': 2, 'val_loss': 0.4, 'Qabf': 0.3})          # newer code logs one more metric
    append_csv(log, {'step': 3, 'val_loss': 0.3, 'Qabf': 0.35})
    with log.open(newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{'step': '1', 'val_loss': '0.5', 'Qabf': ''}, {'step': '2', 'val_loss': '0.4', 'Qabf': '0.3'},
                    {'step': '3', 'val_loss': '0.3', 'Qabf': '0.35'}]
