"""Export: two valid ONNX graphs with dynamic H and W, parity with PyTorch, cards pinned by sha256."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion_ros.core.color import bgr_to_ycrcb, to_unit
from fusion_ros.core.model_card import load_card
from fusion_ros.networks.graphs import FusionCore, Uint8Graph
from fusion_ros.networks.seafusion import SeAFusion
from training.deploy.export import FLOAT_TOL, export
from training.deploy.samples import load_samples
from tests.model_fixtures import PAIRS


def test_graphs_have_opset_17_and_dynamic_sizes(exported):
    for path in exported:
        model = onnx.load(str(path))
        assert max(op.version for op in model.opset_import if op.domain in ('', 'ai.onnx')) >= 17
        for value in list(model.graph.input) + list(model.graph.output):
            dims = value.type.tensor_type.shape.dim
            symbolic = [d.dim_param for d in dims if d.dim_param]
            assert {'H', 'W'} <= set(symbolic), (path.name, value.name)


def test_cards_describe_and_pin_the_graphs(exported):
    uint8_path, float_path = exported
    u8, fl = load_card(uint8_path), load_card(float_path)
    assert (u8.graph, fl.graph) == ('uint8', 'float')
    assert [t.name for t in u8.inputs] == ['ir', 'visible_bgr'] and u8.outputs[0].name == 'fused_bgr'
    assert [t.name for t in fl.inputs] == ['visible_y', 'ir'] and fl.outputs[0].name == 'fused_y'
    parity = u8.provenance['parity']
    assert parity['float_max_abs_diff'] <= 1e-5 and parity['uint8_max_abs_diff'] <= 1
    assert u8.provenance['parameters'] == 166_657


def test_tampered_model_is_refused(exported, tmp_path):
    uint8_path, _ = exported
    copy = tmp_path / 'seafusion.onnx'
    copy.write_bytes(uint8_path.read_bytes() + b'\0')
    (tmp_path / 'seafusion.json').write_text(uint8_path.with_suffix('.json').read_text())
    with pytest.raises(ValueError, match='does not match its card'):
        load_card(copy)


def test_parity_on_a_size_the_export_never_saw(exported):
    """Float graph equals PyTorch to 1e-5 and uint8 graph within one grey level on a cropped real pair."""
    uint8_path, float_path = exported
    torch.manual_seed(0)
    net = SeAFusion().eval()
    name, ir, vis = load_samples(PAIRS, limit=1)[0]
    ir, vis = ir[:123, :157].copy(), vis[:123, :157].copy()
    y = bgr_to_ycrcb(to_unit(vis))[0].astype(np.float32)[None, None]
    irf = to_unit(ir)[None, None]
    with torch.no_grad():
        ref_y = net(torch.from_numpy(y), torch.from_numpy(irf)).numpy()
        ref_bgr = Uint8Graph(FusionCore(net))(torch.from_numpy(ir), torch.from_numpy(vis))[0].numpy()
    got_y = ort.InferenceSession(str(float_path)).run(None, {'visible_y': y, 'ir': irf})[0]
    got_bgr = ort.InferenceSession(str(uint8_path)).run(None, {'ir': ir, 'visible_bgr': vis})[0]
    assert got_y.shape == (1, 1, 123, 157) and got_bgr.shape == (123, 157, 3) and got_bgr.dtype == np.uint8
    assert np.abs(got_y - ref_y).max() <= FLOAT_TOL
    assert np.abs(got_bgr.astype(int) - ref_bgr.astype(int)).max() <= 1


def test_bad_export_arguments_raise(exported, tmp_path):
    with pytest.raises(ValueError, match='opset must be >= 17'):
        export(tmp_path / 'missing.pt', tmp_path / 'x.onnx', PAIRS, opset=13)
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        export(tmp_path / 'missing.pt', tmp_path / 'x.onnx', PAIRS)


def test_card_is_plain_json(exported):
    raw = json.loads(exported[0].with_suffix('.json').read_text())
    assert raw['format'] == 'fusion_ros.model_card/1' and len(raw['sha256']) == 64
