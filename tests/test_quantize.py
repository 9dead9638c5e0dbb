"""int8 graphs (issue 13): what stays float, calibration without held-out pairs, the gate, loading by card."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from fusion_ros.core.imageio import read_ir, read_visible
from fusion_ros.core.model_card import load_card
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.networks.realtime import RealtimeFusion
from training.common.checkpoint import save_checkpoint
from training.common.config import config_from_dict, config_to_dict
from training.deploy.export import export
from training.deploy.quantize import calibration_frames, float_nodes, gate, holdout, run
from tests.model_fixtures import PAIRS

HELD_OUT = ['00091D', 'TNO_020']
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def student(tmp_path_factory) -> Path:
    """A seeded student (non-trivial head) exported from a 'run' that held out two of the sample pairs."""
    folder = tmp_path_factory.mktemp('student')
    torch.manual_seed(0)
    net = RealtimeFusion()
    with torch.no_grad():
        net.head.weight.normal_(std=0.1)
    config = config_from_dict({'method': 'realtime', 'val_source': 'samples', 'val_count': 2, 'sources': [
        {'name': 'samples', 'ir': str(PAIRS / 'ir'), 'vis': str(PAIRS / 'vi')}]})
    (folder / 'val_names.txt').write_text(''.join(f'{n}\n' for n in HELD_OUT))
    save_checkpoint(folder / 'last.pt', {'model': net.state_dict(), 'config': config_to_dict(config), 'step': 0,
                                         'config_path': 'test'})
    return export(folder / 'last.pt', folder / 'realtime.onnx', PAIRS, sample_limit=1)[0]


def test_gradient_stream_and_output_conv_stay_float():
    model = onnx.load(str(REPO / 'models' / 'seafusion.onnx'))       # the shipped graph: structure, not weights
    keep = float_nodes(model)
    sobel_convs = [n for n in keep if '/sobel/g' in n]
    assert len(sobel_convs) == 8 and all(n.endswith('/Conv') for n in sobel_convs)      # gx, gy of 4 GRDBs
    assert len([n for n in keep if n.endswith('/sobel/Add')]) == 4                         # |gx| + |gy|
    assert '/core/net/decoder/decoder.3/Conv' in keep and len(keep) == 13
    assert all(n.startswith('/core/') for n in keep)
    extra = set(float_nodes(model, ('decoder.0/',))) - set(keep)
    assert extra == {'/core/net/decoder/decoder.0/decoder.0.0/Conv',
                     '/core/net/decoder/decoder.0/decoder.0.1/LeakyRelu'}


def test_calibration_never_uses_held_out_pairs(student):
    names, source = holdout(load_card(student))
    assert names == set(HELD_OUT) and source['name'] == 'samples'
    frames = calibration_frames([PAIRS], names, 10, seed=0)
    assert len(frames) == 5 and not {f[0] for f in frames} & names           # 7 pairs, 2 held out
    assert all(f[1].shape == f[2].shape[:2] and f[1].dtype == np.uint8 for f in frames)


def test_int8_student_is_validated_and_loads_through_its_card(student, tmp_path):
    out = tmp_path / 'realtime_int8.onnx'
    shipped, report = run(student, out, [PAIRS], frames=3, keep=(), min_speedup=0.0, max_change=1.0, speed_runs=1)
    assert shipped and out.is_file()
    card = load_card(out)
    assert card.graph == 'uint8' and [t.name for t in card.inputs] == ['ir', 'visible_bgr']
    q = card.provenance['quantization']
    assert q['precision'] == 'int8' and q['quantized_from']['file'] == 'realtime.onnx'
    assert not set(q['calibration']['names']) & set(HELD_OUT)
    assert q['validation']['pairs'] == 2 and 0 <= q['validation']['mean_abs_diff'] <= q['validation']['max_abs_diff']
    assert set(q['validation']['change']) >= {'Qabf', 'VIF', 'EN'} and q['speed']['2_thread']['int8_ms'] > 0
    assert 'torch_weights' not in card.provenance                 # the torch backend must not run fp32 as 'int8'
    node_types = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= node_types
    ir, vis = read_ir(PAIRS / 'ir' / '00091D.png'), read_visible(PAIRS / 'vi' / '00091D.png')
    fused = FusionPipeline.from_model(out, threads=1).fuse(ir, vis).fused_bgr
    reference = FusionPipeline.from_model(student, threads=1).fuse(ir, vis).fused_bgr
    assert fused.shape == reference.shape == (480, 640, 3)
    # 00091D is one of the two validation pairs, so its difference is within the card's maximum
    assert np.abs(fused.astype(int) - reference.astype(int)).max() <= q['validation']['max_abs_diff']


def test_gate_needs_both_speed_and_unchanged_qabf_and_vif():
    def report(speedup, qabf, vif):
        return {'speed': {'2_thread': {'speedup': speedup}},
                'validation': {'relative_change': {'Qabf': qabf, 'VIF': vif, 'EN': -0.5}}}
    assert gate(report(1.7, -0.004, 0.009), 1.6, 0.01)['passed']                 # EN is not gated
    assert not gate(report(1.5, 0.0, 0.0), 1.6, 0.01)['passed']
    verdict = gate(report(2.0, 0.0, -0.02), 1.6, 0.01)
    assert not verdict['passed'] and verdict['worst_relative_change'] == 0.02


def test_float_graph_is_refused(student):
    with pytest.raises(ValueError, match='quantize the uint8 graph'):
        run(student.with_name('realtime_float.onnx'), student.with_name('x_int8.onnx'), [PAIRS], 1, (), 0.0, 1.0, 1)
