"""`fusion-ros build-engine` and training.build_engines: real CLI, TensorRT through the test double."""

import json
import shutil

from fusion_ros.cli import main
from training import build_engines
from tests.trt_double import install_fakes


def test_without_tensorrt_the_error_says_how_to_get_it(exported, capsys):
    # Real behaviour of this machine: TensorRT is not installed.
    assert main(['build-engine', '--model', str(exported[0])]) == 2
    assert 'needs the TensorRT Python bindings' in capsys.readouterr().err


def test_build_then_reuse_then_refuse(exported, tmp_path, monkeypatch, capsys):
    install_fakes(monkeypatch)
    plan = tmp_path / 'e.engine'
    args = ['build-engine', '--model', str(exported[0]), '--out', str(plan), '--profile-min', '16', '16',
            '--profile-opt', '120', '160', '--profile-max', '256', '256', '--timing-cache', str(tmp_path / 't.cache')]
    assert main(args) == 0
    assert 'build engine: no engine at' in capsys.readouterr().out and plan.is_file()
    assert main(args) == 0
    assert 'load engine' in capsys.readouterr().out
    assert main(args[:-2] + ['--precision', 'fp32', '--no-rebuild']) == 2
    err = capsys.readouterr().err
    assert "precision: cached 'fp16', wanted 'fp32'" in err and 'rebuilding is disabled' in err
    assert main(args + ['--profile-opt', '999', '160']) == 2       # above the max of 256
    assert 'profile height must satisfy' in capsys.readouterr().err


def test_training_entry_builds_every_node_model(exported, exported_sgfusion, tmp_path, monkeypatch, capsys):
    install_fakes(monkeypatch)
    for path in (*exported, exported_sgfusion[0]):
        for suffix in ('.onnx', '.json'):
            shutil.copy(path.with_suffix(suffix), tmp_path / (path.stem + suffix))
    build_engines.main(['--models', str(tmp_path), '--precision', 'fp16', 'fp32'])
    rows = json.loads((tmp_path / 'engines.json').read_text())
    assert sorted((r['model'], r['precision']) for r in rows) == [
        ('seafusion.onnx', 'fp16'), ('seafusion.onnx', 'fp32'), ('sgfusion.onnx', 'fp16'), ('sgfusion.onnx', 'fp32')]
    assert all(r['action'] == 'build' for r in rows)                   # float graphs are not the node's: skipped
    assert (tmp_path / 'sgfusion_fp32.engine').is_file() and (tmp_path / 'sgfusion_fp32.json').is_file()
    build_engines.main(['--models', str(tmp_path), '--precision', 'fp16'])
    assert {r['action'] for r in json.loads((tmp_path / 'engines.json').read_text())} == {'load'}
