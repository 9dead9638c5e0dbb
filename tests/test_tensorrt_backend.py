"""
TensorRT backend (and the builder feeding it), run against the TensorRT/cudart test double.

TensorRT and CUDA cannot run on the machines this project develops and tests on, so these tests use
tests/trt_double.py (the one mock the project allows): it follows the real TensorRT 10 and 11 APIs
(checked against the real bindings in tests/test_trt_conformance.py) and executes the same ONNX with
ONNX Runtime, through real memory addresses. Everything else (ONNX files, cards, sidecars, timing
cache files, numpy buffers, the pipeline) is real. The cache faults are in tests/test_engine_builder.py.
"""

import json
import shutil

import numpy as np
import pytest

from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fusion_ros.backends.tensorrt_backend import TensorRTBackend
from fusion_ros.core.imageio import read_ir, read_visible
from fusion_ros.core.model_card import load_card, sha256_of
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.tensorrt.builder import BuildSettings, EngineBuildError, ensure_engine, profile_shapes
from fusion_ros.tensorrt.cuda_memory import CudaRuntime
from fusion_ros.tensorrt.engine_cache import EngineRebuildRefused, Profile, sidecar_path
from tests.model_fixtures import frame, PAIRS, random_feeds, write_tiny_model
from tests.trt_double import FakeCudart, FakeTensorRT, PLAN_MAGIC

SMALL = Profile((16, 16), (120, 160), (512, 640))


def build(model, tmp_path, trt=None, cudart=None, **settings):
    """ensure_engine on the double; returns (plan path, decision, trt, cudart)."""
    trt, cudart = trt or FakeTensorRT(), cudart or FakeCudart()
    settings = {'profile': SMALL, 'precision': 'fp16', **settings}
    plan, decision, _ = ensure_engine(model, tmp_path / 'model.engine', BuildSettings(**settings),
                                      trt=trt, cuda=CudaRuntime(cudart), log=lambda _: None)
    return plan, decision, trt, cudart


def plan_header(plan) -> dict:
    """What the double recorded about the build (flags, graph, profile)."""
    return json.loads(plan.read_bytes()[len(PLAN_MAGIC):].split(b'\n', 1)[0])


def test_profile_shapes_follow_the_card_layouts(exported):
    uint8_card, float_card = (load_card(p) for p in exported)
    assert profile_shapes(uint8_card, SMALL) == {'ir': ((16, 16), (120, 160), (512, 640)),
                                                 'visible_bgr': ((16, 16, 3), (120, 160, 3), (512, 640, 3))}
    assert profile_shapes(float_card, SMALL)['visible_y'] == ((1, 1, 16, 16), (1, 1, 120, 160), (1, 1, 512, 640))


@pytest.mark.parametrize('version, network_flags', [('10.3.0', 2), ('11.4.0.106', 1)])
def test_fp16_builds_the_fp16_graph_strongly_typed_on_10_and_11(exported, tmp_path, version, network_flags):
    """One path for both: STRONGLY_TYPED (bit 1 on 10.x, bit 0 on 11.x) and the fp16 graph; never the FP16 flag."""
    cache = tmp_path / 'timing.cache'
    plan, decision, trt, _ = build(exported[0], tmp_path, trt=FakeTensorRT(version), timing_cache=cache,
                                   workspace_mb=64)
    assert decision.action == 'build' and trt._builds == 1 and plan.is_file() and cache.is_file()
    fp16 = load_card(exported[0]).provenance['fp16']
    header = plan_header(plan)
    assert header['network_flags'] == network_flags and header['strongly_typed'] and header['flags'] == []
    assert header['graph'] == 'fp16' and header['graph_sha256'] == fp16['sha256'] and header['workspace'] == 64 << 20
    side = json.loads(sidecar_path(plan).read_text())
    assert side['tensorrt_version'] == version and side['gpu_name'] == 'Fake GPU'
    assert side['compute_capability'] == '9.0' and side['precision'] == 'fp16'
    assert side['graph'] == fp16['onnx'] == 'seafusion_fp16.onnx' and side['onnx_sha256'] == fp16['sha256']
    assert side['build_seconds'] >= 0
    assert side['profile'] == {'min_hw': [16, 16], 'opt_hw': [120, 160], 'max_hw': [512, 640]}
    _, again, trt2, _ = build(exported[0], tmp_path, trt=FakeTensorRT(version), timing_cache=cache)
    assert again.action == 'load' and trt2._builds == 0


def test_fp32_builds_the_model_itself(exported, tmp_path):
    build(exported[0], tmp_path)
    plan, decision, trt, _ = build(exported[0], tmp_path, precision='fp32')
    assert decision.action == 'build' and trt._builds == 1
    assert "graph: cached 'seafusion_fp16.onnx', wanted 'seafusion.onnx'" in decision.reason
    assert "precision: cached 'fp16', wanted 'fp32'" in decision.reason
    header = plan_header(plan)
    assert header['graph'] == 'fp32' and header['graph_sha256'] == load_card(exported[0]).sha256
    assert header['strongly_typed'] and header['flags'] == []


def test_fp16_builds_the_graph_the_card_pins_derived_or_beside_the_model(exported, tmp_path):
    for suffix in ('.onnx', '.json'):
        shutil.copy(exported[0].with_suffix(suffix), tmp_path / ('m' + suffix))
    model = tmp_path / 'm.onnx'
    card = json.loads((tmp_path / 'm.json').read_text())
    card['provenance']['fp16']['onnx'] = 'm_fp16.onnx'
    (tmp_path / 'm.json').write_text(json.dumps(card))
    plan, decision, _, _ = build(model, tmp_path / 'engines')          # derived into the engine folder
    assert decision.action == 'build' and plan_header(plan)['graph_sha256'] == card['provenance']['fp16']['sha256']
    assert sha256_of(plan.parent / 'm_fp16.onnx') == card['provenance']['fp16']['sha256']
    assert not (tmp_path / 'm_fp16.onnx').exists()
    shutil.copy(exported[0], tmp_path / 'm_fp16.onnx')                 # beside the model: the fp32 graph, wrong
    with pytest.raises(EngineBuildError, match='does not match the sha256'):
        build(model, tmp_path / 'engines')
    (tmp_path / 'm_fp16.onnx').unlink()
    card['provenance']['fp16']['sha256'] = '0' * 64                     # not what this onnx derives
    (tmp_path / 'm.json').write_text(json.dumps(card))
    with pytest.raises(EngineBuildError, match='not the one its card pins .*install that onnx version'):
        build(model, tmp_path / 'other')
    del card['provenance']['fp16']
    (tmp_path / 'm.json').write_text(json.dumps(card))
    with pytest.raises(EngineBuildError, match='has no fp16 graph .*or use precision fp32'):
        build(model, tmp_path)


def test_refused_rebuild_names_every_difference(exported, tmp_path):
    build(exported[0], tmp_path)
    other_gpu = FakeCudart('Orin', (8, 7))
    with pytest.raises(EngineRebuildRefused) as err:
        ensure_engine(exported[0], tmp_path / 'model.engine', BuildSettings('fp16', SMALL), allow_rebuild=False,
                      trt=FakeTensorRT('10.4.0'), cuda=CudaRuntime(other_gpu), log=lambda _: None)
    message = str(err.value)
    for field in ("tensorrt_version: cached '10.3.0', wanted '10.4.0'", "gpu_name: cached 'Fake GPU', wanted 'Orin'",
                  "compute_capability: cached '9.0', wanted '8.7'", 'fusion-ros build-engine'):
        assert field in message


def test_parser_errors_and_failed_builds_are_reported(exported, tmp_path):
    from onnx import helper
    node = helper.make_node('Unique', ['visible_bgr'], ['fused_bgr'])
    bad = write_tiny_model(tmp_path, 'unique', node)
    with pytest.raises(EngineBuildError, match='cannot parse .*Unique'):
        build(bad, tmp_path, precision='fp32')
    with pytest.raises(EngineBuildError, match='cannot parse .*Unique'):
        build(bad, tmp_path, precision='fp32', trt=FakeTensorRT('11.4.0.106'))
    with pytest.raises(EngineBuildError, match='failed to build'):
        build(exported[0], tmp_path, trt=FakeTensorRT(fail_build=True))


def test_backend_matches_onnxruntime_and_reuses_shapes_and_buffers(exported, tmp_path):
    plan, _, trt, cudart = build(exported[0], tmp_path, precision='fp32')
    card = load_card(exported[0])
    backend = TensorRTBackend(plan, card, trt=trt, cuda=CudaRuntime(cudart))
    reference = OnnxRuntimeBackend(exported[0], card, threads=1)
    ir, vis = frame(120, 160)
    for _ in range(3):
        out = backend.run({'ir': ir, 'visible_bgr': vis})
    np.testing.assert_array_equal(out['fused_bgr'], reference.run({'ir': ir, 'visible_bgr': vis})['fused_bgr'])
    assert out['fused_bgr'].dtype == np.uint8 and out['fused_bgr'].shape == (120, 160, 3)
    context = backend.context
    assert context._set_shape_calls == 2 and backend.reshapes == 2          # two inputs, set once
    assert cudart._calls['cudaMalloc'] == 3 and cudart._calls['cudaMallocHost'] == 3
    assert cudart._calls['cudaStreamCreate'] == 1 and cudart._calls['cudaStreamSynchronize'] == 3
    small_ir, small_vis = frame(60, 80, seed=1)                              # smaller: new shapes, same buffers
    out = backend.run({'ir': small_ir, 'visible_bgr': small_vis})
    np.testing.assert_array_equal(out['fused_bgr'],
                                  reference.run({'ir': small_ir, 'visible_bgr': small_vis})['fused_bgr'])
    assert context._set_shape_calls == 4 and cudart._calls['cudaMalloc'] == 3
    big_ir, big_vis = frame(240, 320, seed=2)                                # larger: buffers grow once
    backend.run({'ir': big_ir, 'visible_bgr': big_vis})
    assert cudart._calls['cudaMalloc'] == 6 and cudart._calls['cudaFree'] == 3
    backend.close()
    assert not cudart._memory                                                # everything freed


def test_float_graph_and_mask_outputs(exported, exported_sgfusion, tmp_path):
    for model in (exported[1], exported_sgfusion[0]):
        plan, _, trt, cudart = build(model, tmp_path / model.stem, precision='fp32')
        card = load_card(model)
        backend = TensorRTBackend(plan, card, trt=trt, cuda=CudaRuntime(cudart))
        reference = OnnxRuntimeBackend(model, card, threads=1)
        feeds = random_feeds(card, 64, 96)
        got, want = backend.run(feeds), reference.run(feeds)
        assert set(got) == {t.name for t in card.outputs}
        for name in got:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])


def test_bad_inputs_are_named_before_tensorrt_sees_them(exported, tmp_path):
    plan, _, trt, cudart = build(exported[0], tmp_path)
    backend = TensorRTBackend(plan, load_card(exported[0]), trt=trt, cuda=CudaRuntime(cudart))
    ir, vis = frame(8, 8)
    with pytest.raises(ValueError, match=r'outside the engine profile \(16, 16\)..\(512, 640\)'):
        backend.run({'ir': ir, 'visible_bgr': vis})
    ir, vis = frame(32, 32)
    with pytest.raises(ValueError, match="input 'ir' must be uint8, got float32"):
        backend.run({'ir': ir.astype(np.float32), 'visible_bgr': vis})
    with pytest.raises(ValueError, match='missing input'):
        backend.run({'ir': ir})


def test_plan_from_another_tensorrt_version_is_refused_with_the_fix(exported, tmp_path):
    plan, _, _, cudart = build(exported[0], tmp_path)
    with pytest.raises(ValueError, match='cannot deserialize .*fusion-ros build-engine'):
        TensorRTBackend(plan, load_card(exported[0]), trt=FakeTensorRT('10.4.0'), cuda=CudaRuntime(cudart))


@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_pipeline_on_tensorrt_matches_pipeline_on_onnxruntime(exported, tmp_path, precision):
    """fp32: the same graph, bit for bit; fp16: the fp16 graph, within what its card's validation measured."""
    plan, _, trt, cudart = build(exported[0], tmp_path, precision=precision)
    card = load_card(exported[0])
    trt_pipe = FusionPipeline(card, TensorRTBackend(plan, card, trt=trt, cuda=CudaRuntime(cudart)))
    ort_pipe = FusionPipeline.from_model(exported[0], threads=1)
    ir, vis = read_ir(PAIRS / 'ir' / 'FLIR_00006.jpg'), read_visible(PAIRS / 'vi' / 'FLIR_00006.jpg')
    got, want = trt_pipe.fuse(ir, vis).fused_bgr, ort_pipe.fuse(ir, vis).fused_bgr
    difference = np.abs(got.astype(int) - want.astype(int))
    if precision == 'fp32':
        assert difference.max() == 0
    else:
        assert 0 < difference.max() <= card.provenance['fp16']['validation']['max_abs_levels'] + 1
        assert difference.mean() < 0.5
