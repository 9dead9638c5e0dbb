"""Every shipped graph parses in TensorRT as far as can be proved without TensorRT: operators and UINT8 I/O."""

from pathlib import Path

from onnx import helper, TensorProto
import pytest

from fusion_ros.tensorrt.onnx_support import check_for_tensorrt, SUPPORTED_OPS, unsupported_ops
from tests.model_fixtures import fixed_size_model

SHIPPED = sorted((Path(__file__).resolve().parent.parent / 'models').glob('*.onnx'))


def test_there_are_shipped_graphs():
    assert {p.name for p in SHIPPED} >= {'seafusion.onnx', 'seafusion_float.onnx'}


@pytest.mark.parametrize('path', SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_graph_uses_only_supported_operators_and_casts_uint8_at_the_edges(path):
    assert check_for_tensorrt(path) == []


def test_an_unsupported_operator_is_named():
    graph = helper.make_graph([helper.make_node('Unique', ['x'], ['y'])], 'g',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [None])])
    assert unsupported_ops(helper.make_model(graph)) == ['Unique']
    assert 'Conv' in SUPPORTED_OPS and 'LeakyRelu' in SUPPORTED_OPS


def test_uint8_tensors_inside_the_graph_are_reported(tmp_path):
    problems = check_for_tensorrt(fixed_size_model(tmp_path))   # Reshape straight on the uint8 input
    assert any("uint8 input 'visible_bgr' feeds Reshape" in p for p in problems)
    assert any("uint8 output 'fused_bgr' is produced by Reshape" in p for p in problems)
