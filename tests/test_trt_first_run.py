"""
benchmarks/first_run.py, the one command for the first GPU run, end to end through the TensorRT test double.

No GPU here: TensorRT and cudart are tests/trt_double.py, so the engines are ONNX Runtime underneath
and the speeds mean nothing; what is proved is that the command builds every shipped model, compares
the engines with ONNX Runtime on the bundled pairs, runs the model-only and node benchmarks (real
rclpy and Fast DDS) and writes both reports. On a GPU machine the same command measures for real.
"""

import json
from pathlib import Path
import sys

from onnx import helper, TensorProto

from tests.model_fixtures import PAIRS, write_tiny_model
from tests.trt_double import install_fakes
from training.deploy.samples import load_samples
from training.deploy.fp16 import attach_fp16

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'benchmarks'))
import first_run  # noqa: E402  (a script folder, not a package)

QUICK = ['--pairs-limit', '1', '--sizes', '640x480', '--runs', '2', '--warmup', '1', '--duration', '1', '--rate', '5']


def tiny_model(folder: Path, name: str) -> Path:
    """A small real uint8 graph (fused = visible darkened) with its validated fp16 twin: fast enough for a node run."""
    half = helper.make_tensor('half', TensorProto.FLOAT, [], [0.5])
    nodes = [helper.make_node('Constant', [], ['half'], value=half),
             helper.make_node('Cast', ['visible_bgr'], ['v'], to=TensorProto.FLOAT),
             helper.make_node('Mul', ['v', 'half'], ['d']), helper.make_node('Round', ['d'], ['r'])]
    model = write_tiny_model(folder, name, helper.make_node('Cast', ['r'], ['fused_bgr'], to=TensorProto.UINT8),
                             nodes)
    attach_fp16(model, load_samples(PAIRS, 1))
    return model


def test_first_run_builds_checks_measures_and_reports(tmp_path, monkeypatch):
    models = tmp_path / 'models'
    models.mkdir()
    for name in ('alpha', 'beta'):
        tiny_model(models, name)
    trt, _ = install_fakes(monkeypatch)
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros'))
    out = tmp_path / 'report' / 'first_gpu_run'
    assert first_run.main(['--models', str(models), '--out', str(out), *QUICK]) == 0
    report = json.loads(out.with_suffix('.json').read_text())
    assert report['environment']['tensorrt'] == '10.3.0' and report['environment']['gpu'] == 'Fake GPU'
    assert [(r['model'], r['action'], r['graph']) for r in report['engines']] == [
        ('alpha.onnx', 'build', 'alpha_fp16.onnx'), ('beta.onnx', 'build', 'beta_fp16.onnx')]
    for model in ('alpha.onnx', 'beta.onnx'):
        accuracy = report['accuracy'][model]
        assert accuracy['max_abs_levels'] <= 1 and len(accuracy['samples']) == 1    # the fp16 graph vs fp32
        entry = report['speed'][model]['640x480']
        assert entry['describe'] == f'tensorrt:{model[:-5]}/uint8' and entry['model_only']['frames_per_s'] > 0
        assert entry['node']['fused_received'] > 0
    text = out.with_suffix('.md').read_text()
    assert '## Engines' in text and '| beta.onnx | fp16 | build |' in text and '| alpha.onnx | 640x480 |' in text
    assert trt._builds == 4          # per model: the default plan (accuracy), one tuned for 640x480 (speed)


def test_without_tensorrt_it_stops_with_the_install_hint(tmp_path, capsys):
    """The real state of this machine: no TensorRT. The report says why, and the exit status is 1."""
    out = tmp_path / 'first_gpu_run'
    assert first_run.main(['--out', str(out), *QUICK]) == 1
    report = json.loads(out.with_suffix('.json').read_text())
    assert 'needs the TensorRT Python bindings' in report['stopped'] and report['engines'] == []
    assert not out.with_suffix('.md').exists() and 'first run stopped' in capsys.readouterr().err
