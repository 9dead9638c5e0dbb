"""
The fp16 graphs TensorRT builds for precision fp16 (fusion_ros/tensorrt/fp16_graph.py), validated at export
(training/deploy/fp16.py).

All real: ONNX graphs, onnx.checker, ONNX Runtime, the bundled pairs. A tiny graph whose
intermediate values exceed half precision's range shows why the keep-in-fp32 list exists.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, TensorProto
import onnxruntime as ort
import pytest

from fusion_ros.core.model_card import load_card, sha256_of
from fusion_ros.tensorrt.fp16_graph import convert, derive_fp16, Fp32Keep
from fusion_ros.tensorrt.onnx_support import check_for_tensorrt
from tests.model_fixtures import PAIRS, write_tiny_model
from training.deploy.samples import load_samples
from training.deploy.fp16 import attach_fp16, keep_for

REPO = Path(__file__).resolve().parent.parent

SQUARES = ('Mul', 'ReduceMean', 'Sqrt')


def run(model: onnx.ModelProto, feeds: dict) -> list:
    return ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider']).run(None, feeds)


def rms_model(folder):
    """fused = visible * 255 / rms(100 * visible): the mean of squares (~4e8) overflows half precision."""
    scale = helper.make_tensor('s', TensorProto.FLOAT, [], [100.0])
    nodes = [helper.make_node('Constant', [], ['s'], value=scale),
             helper.make_node('Cast', ['visible_bgr'], ['v'], to=TensorProto.FLOAT),
             helper.make_node('Mul', ['v', 's'], ['x'], name='scale'),
             helper.make_node('Mul', ['x', 'x'], ['sq'], name='square'),
             helper.make_node('ReduceMean', ['sq'], ['ms'], keepdims=1, name='energy'),
             helper.make_node('Sqrt', ['ms'], ['rms'], name='rms'),
             helper.make_node('Div', ['x', 'rms'], ['n'], name='normalise'),
             helper.make_node('Mul', ['n', 's'], ['m'], name='rescale'),
             helper.make_node('Clip', ['m'], ['c'], name='clip'),
             helper.make_node('Round', ['c'], ['r'])]
    return write_tiny_model(folder, 'rms', helper.make_node('Cast', ['r'], ['fused_bgr'], to=TensorProto.UINT8),
                            nodes)


def test_shipped_models_declare_what_overflows():
    assert {'MatMul', 'Softmax'} <= set(keep_for('coconet').op_types)
    assert {'ReduceL2', 'LayerNormalization'} <= set(keep_for('refusion').op_types)
    assert keep_for('seafusion') == Fp32Keep() and keep_for('unknown-method') == Fp32Keep()


def test_conversion_keeps_uint8_io_and_makes_weights_and_arithmetic_half(exported):
    fp32 = onnx.load(str(exported[0]))
    fp16, kept = convert(fp32)
    assert kept == 0
    assert [(v.name, v.type.tensor_type.elem_type) for v in (*fp16.graph.input, *fp16.graph.output)] == \
        [(v.name, v.type.tensor_type.elem_type) for v in (*fp32.graph.input, *fp32.graph.output)]
    assert {i.data_type for i in fp16.graph.initializer if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)} \
        == {TensorProto.FLOAT16}
    inferred = onnx.shape_inference.infer_shapes(fp16)
    float_values = [v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT]
    assert float_values == []                                   # every float op computes in half precision
    assert fp32 == onnx.load(str(exported[0]))                  # the input model is not modified


def test_kept_ops_stay_fp32_and_that_is_what_prevents_overflow(tmp_path):
    """
    Measured with the emulation (every fp16 tensor rounded through half precision).

    ONNX Runtime on a CPU runs the fp16 file's ops in fp32 where it has no fp16 kernel and drops the
    casts between them, so the file itself hides this overflow here; on a GPU it would not.
    """
    model = onnx.load(str(rms_model(tmp_path)))
    vis = np.random.default_rng(0).integers(0, 256, (32, 48, 3), np.uint8)
    feeds = {'ir': vis[..., 0].copy(), 'visible_bgr': vis}
    want = run(model, feeds)[0].astype(int)
    assert np.abs(run(convert(model, emulate=True)[0], feeds)[0].astype(int) - want).max() > 100   # inf / NaN
    assert np.abs(run(convert(model)[0], feeds)[0].astype(int) - want).max() <= 1   # what CPU ORT shows instead
    for keep, count in ((Fp32Keep(SQUARES), 5), (Fp32Keep(node_prefixes=('square', 'energy', 'rms')), 3)):
        emulated, kept = convert(model, keep, emulate=True)
        assert kept == count and np.abs(run(emulated, feeds)[0].astype(int) - want).max() <= 1
        fp16, _ = convert(model, keep)
        assert np.abs(run(fp16, feeds)[0].astype(int) - want).max() <= 1
    casts = [n for n in convert(model, Fp32Keep(SQUARES))[0].graph.node if n.op_type == 'Cast']
    assert any(n.attribute[0].i == TensorProto.FLOAT for n in casts)        # fp16 -> fp32 into the kept ops
    assert any(n.attribute[0].i == TensorProto.FLOAT16 for n in casts)      # and back


def test_an_fp16_graph_that_overflows_is_refused_with_the_remedy(tmp_path):
    model = rms_model(tmp_path)
    card_before = model.with_suffix('.json').read_text()
    with pytest.raises(RuntimeError, match='overflows in half precision; declare those ops in FP32_OPS'):
        attach_fp16(model, load_samples(PAIRS, 1))
    assert not (tmp_path / 'rms_fp16.onnx').exists() and model.with_suffix('.json').read_text() == card_before


def test_export_pins_a_validated_fp16_graph_that_the_runtime_derives(exported, tmp_path):
    card = load_card(exported[0])
    fp16 = card.provenance['fp16']
    path = derive_fp16(exported[0], card, tmp_path)
    assert path == tmp_path / 'seafusion_fp16.onnx' and sha256_of(path) == fp16['sha256']
    assert check_for_tensorrt(path) == []
    report = fp16['validation']
    assert report['compared'] == 'seafusion_fp16.onnx' and len(report['samples']) == 2
    assert report['max_abs_levels'] <= 2 and report['mean_abs_levels'] < 0.2
    assert set(report['metric_change']) == {'EN', 'SF', 'MI', 'VIF', 'Qabf', 'SSIM'}
    assert all(abs(v) < 0.05 for v in report['metric_change'].values())
    assert 'fp16' not in load_card(exported[1]).provenance        # the float graph is not the node's


def test_segmenter_class_ids_reach_uint8_through_float(exported_seg, tmp_path):
    """TensorRT casts to UINT8 only from FLOAT/HALF: the ArgMax ids must not be cast INT64 -> UINT8."""
    uint8, float_graph = exported_seg
    for path in (uint8, float_graph, uint8.with_name('seafusion_seg_segmenter.onnx'),
                 derive_fp16(uint8, load_card(uint8), tmp_path)):
        assert check_for_tensorrt(path) == [], path.name
    report = load_card(uint8).provenance['fp16']['validation']
    assert report['class_map_equal_share'] > 0.99
    assert json.loads(uint8.with_suffix('.json').read_text())['mask']['kind'] == 'classes'


def test_attach_pins_the_fp16_graph_without_writing_a_second_copy(tmp_path):
    model = write_tiny_model(tmp_path, 'copy', helper.make_node('Identity', ['visible_bgr'], ['fused_bgr']))
    before = sorted(p.name for p in tmp_path.iterdir())
    entry = attach_fp16(model, load_samples(PAIRS, 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == before            # the card changed, no file was added
    assert entry['onnx'] == 'copy_fp16.onnx' and load_card(model).provenance['fp16'] == entry
    assert sha256_of(derive_fp16(model, load_card(model), tmp_path / 'engines')) == entry['sha256']


def test_derivation_reuses_a_matching_file_and_refuses_other_bytes(exported, tmp_path):
    card = load_card(exported[0])
    path = derive_fp16(exported[0], card, tmp_path)
    path.write_bytes(b'stale')                                       # a wrong file in the folder is replaced
    assert derive_fp16(exported[0], card, tmp_path) == path and sha256_of(path) == card.provenance['fp16']['sha256']
    stamp = path.stat().st_mtime_ns
    assert derive_fp16(exported[0], card, tmp_path) == path and path.stat().st_mtime_ns == stamp   # reused
    other = dataclasses.replace(card, provenance={**card.provenance,
                                                  'fp16': {**card.provenance['fp16'], 'sha256': '0' * 64}})
    with pytest.raises(ValueError, match=r'not the one its card pins \(validated with onnx .*-m training.deploy.fp16'):
        derive_fp16(exported[0], other, tmp_path / 'other')
    assert not (tmp_path / 'other').exists()


@pytest.mark.parametrize('card_path', sorted(p for p in (REPO / 'models').glob('*.json')
                                             if 'fp16' in json.loads(p.read_text()).get('provenance', {})),
                         ids=lambda p: p.stem)
def test_every_shipped_fp16_graph_is_derived_bit_for_bit(card_path, tmp_path):
    """The shipped models carry no fp16 file: the one their card validated must come back exactly."""
    model = card_path.with_suffix('.onnx')
    card = load_card(model)
    assert not model.with_name(card.provenance['fp16']['onnx']).exists()
    assert sha256_of(derive_fp16(model, card, tmp_path)) == card.provenance['fp16']['sha256']
