"""`fusion-ros build-engine` and training.deploy.build_engines: real CLI, TensorRT through the test double."""

import json
import shutil

from onnx import helper
import pytest

from fusion_ros.cli.main import main
from tests.model_fixtures import write_tiny_model
from tests.trt_double import install_fakes
from training.deploy import build_engines


def test_without_tensorrt_the_error_says_how_to_get_it(exported, capsys):
    # Real behaviour of this machine: TensorRT is not installed.
    assert main(['build-engine', '--model', str(exported[0])]) == 2
    err = capsys.readouterr().err
    assert 'needs the TensorRT Python bindings' in err and 'requirements/gpu-x86-cuda12.txt' in err


def test_build_then_reuse_then_force_then_refuse(exported, tmp_path, monkeypatch, capsys):
    trt, _ = install_fakes(monkeypatch)
    plan = tmp_path / 'e.engine'
    args = ['build-engine', '--model', str(exported[0]), '--out', str(plan), '--profile-min', '16', '16',
            '--profile-opt', '120', '160', '--profile-max', '256', '256', '--timing-cache', str(tmp_path / 't.cache')]
    assert main(args) == 0
    assert 'build engine: no engine at' in capsys.readouterr().out and plan.is_file()
    assert main(args) == 0
    assert 'load engine' in capsys.readouterr().out and trt._builds == 1
    assert main(args + ['--force']) == 0
    assert 'build engine: rebuild of e.engine forced' in capsys.readouterr().out and trt._builds == 2
    assert main(args[:-2] + ['--precision', 'fp32', '--no-rebuild']) == 2
    err = capsys.readouterr().err
    assert "precision: cached 'fp16', wanted 'fp32'" in err and 'rebuilding is disabled' in err
    assert main(args + ['--profile-opt', '999', '160']) == 2       # above the max of 256
    assert 'profile height must satisfy' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ['--force', '--no-rebuild'])
    assert 'not allowed with argument' in capsys.readouterr().err


def test_training_entry_builds_every_node_model_and_survives_a_broken_one(
        exported, exported_sgfusion, tmp_path, monkeypatch, capsys):
    install_fakes(monkeypatch)
    models = tmp_path / 'models'
    models.mkdir()
    for path in (*exported, exported_sgfusion[0]):
        for suffix in ('.onnx', '.json', '_fp16.onnx'):
            source = path.with_name(path.stem + suffix)
            if source.is_file():
                shutil.copy(source, models / source.name)
    write_tiny_model(models, 'broken', helper.make_node('Unique', ['visible_bgr'], ['fused_bgr']))
    out = tmp_path / 'engines'
    assert build_engines.main(['--models', str(models), '--precision', 'fp16', 'fp32', '--out-dir', str(out)]) == 1
    rows = json.loads((out / 'engines.json').read_text())
    assert sorted((r['model'], r['precision'], r['action']) for r in rows) == [
        ('broken.onnx', 'fp16', 'failed'), ('broken.onnx', 'fp32', 'failed'),
        ('seafusion.onnx', 'fp16', 'build'), ('seafusion.onnx', 'fp32', 'build'),
        ('sgfusion.onnx', 'fp16', 'build'), ('sgfusion.onnx', 'fp32', 'build')]   # float graphs are not the node's
    errors = {r['precision']: r['error'] for r in rows if r['action'] == 'failed'}
    assert 'has no fp16 graph' in errors['fp16'] and 'Unique' in errors['fp32']
    assert 'broken.onnx' in capsys.readouterr().err
    graphs = {(r['model'], r['precision']): r['graph'] for r in rows if r['action'] == 'build'}
    assert graphs[('sgfusion.onnx', 'fp16')] == 'sgfusion_fp16.onnx' and graphs[('sgfusion.onnx', 'fp32')] == \
        'sgfusion.onnx'
    assert all((out / r['plan']).is_file() for r in rows if r['action'] == 'build')
    (models / 'broken.onnx').unlink()
    assert build_engines.main(['--models', str(models), '--precision', 'fp16', '--out-dir', str(out)]) == 0
    assert {r['action'] for r in json.loads((out / 'engines.json').read_text())} == {'load'}
