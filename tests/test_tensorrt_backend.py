"""
Engine builder, cache policy and TensorRT backend, run against the TensorRT/cudart test double.

TensorRT and CUDA cannot be installed on the machines this project develops and tests on, so these
tests use tests/trt_double.py (the one mock the project allows): it follows the documented TensorRT
10 API and executes the same ONNX with ONNX Runtime, through real memory addresses. Everything else
(ONNX files, cards, sidecars, timing cache files, numpy buffers, the pipeline) is real.
"""

import json

import numpy as np
import pytest

from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fusion_ros.backends.tensorrt_backend import TensorRTBackend
from fusion_ros.model_card import load_card
from fusion_ros.pipeline import FusionPipeline
from fusion_ros.tensorrt.builder import BuildSettings, EngineBuildError, ensure_engine, profile_shapes
from fusion_ros.tensorrt.cuda_memory import CudaRuntime
from fusion_ros.tensorrt.engine_cache import EngineRebuildRefused, Profile, sidecar_path
from tests.model_fixtures import frame, random_feeds, write_tiny_model
from tests.trt_double import FakeCudart, FakeTensorRT

SMALL = Profile((16, 16), (120, 160), (512, 640))


def build(model, tmp_path, trt=None, cudart=None, **settings):
    """ensure_engine on the double; returns (plan path, decision, trt, cudart)."""
    trt, cudart = trt or FakeTensorRT(), cudart or FakeCudart()
    settings = {'profile': SMALL, 'precision': 'fp16', **settings}
    plan, decision = ensure_engine(model, tmp_path / 'model.engine', BuildSettings(**settings),
                                   trt=trt, cuda=CudaRuntime(cudart), log=lambda _: None)
    return plan, decision, trt, cudart


def test_profile_shapes_follow_the_card_layouts(exported):
    uint8_card, float_card = (load_card(p) for p in exported)
    assert profile_shapes(uint8_card, SMALL) == {'ir': ((16, 16), (120, 160), (512, 640)),
                                                 'visible_bgr': ((16, 16, 3), (120, 160, 3), (512, 640, 3))}
    assert profile_shapes(float_card, SMALL)['visible_y'] == ((1, 1, 16, 16), (1, 1, 120, 160), (1, 1, 512, 640))


def test_build_writes_plan_sidecar_and_timing_cache_then_loads(exported, tmp_path):
    cache = tmp_path / 'timing.cache'
    plan, decision, trt, _ = build(exported[0], tmp_path, timing_cache=cache, workspace_mb=64)
    assert decision.action == 'build' and trt.builds == 1 and plan.is_file() and cache.is_file()
    side = json.loads(sidecar_path(plan).read_text())
    assert side['tensorrt_version'] == '10.3.0' and side['gpu_name'] == 'Fake GPU'
    assert side['compute_capability'] == '9.0' and side['precision'] == 'fp16'
    assert side['onnx_sha256'] == load_card(exported[0]).sha256 and side['build_seconds'] >= 0
    assert side['profile'] == {'min_hw': [16, 16], 'opt_hw': [120, 160], 'max_hw': [512, 640]}
    header = json.loads(plan.read_bytes()[8:].split(b'\n', 1)[0])
    assert header['flags'] == ['FP16'] and header['workspace'] == 64 << 20
    _, again, trt2, _ = build(exported[0], tmp_path, timing_cache=cache)
    assert again.action == 'load' and trt2.builds == 0


def test_changed_key_rebuilds_naming_the_fields(exported, tmp_path):
    build(exported[0], tmp_path)
    _, decision, trt, _ = build(exported[0], tmp_path, precision='fp32')
    assert decision.action == 'build' and trt.builds == 1
    assert "precision: cached 'fp16', wanted 'fp32'" in decision.reason
    header = json.loads((tmp_path / 'model.engine').read_bytes()[8:].split(b'\n', 1)[0])
    assert header['flags'] == []                                       # fp32: no FP16 flag


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
        build(bad, tmp_path)
    with pytest.raises(EngineBuildError, match='failed to build'):
        build(exported[0], tmp_path, trt=FakeTensorRT(fail_build=True))
    with pytest.raises(EngineBuildError, match='ModelOpt AutoCast'):
        build(exported[0], tmp_path, trt=FakeTensorRT('11.1.0', fp16_flag=False))


def test_backend_matches_onnxruntime_and_reuses_shapes_and_buffers(exported, tmp_path):
    plan, _, trt, cudart = build(exported[0], tmp_path)
    card = load_card(exported[0])
    backend = TensorRTBackend(plan, card, trt=trt, cuda=CudaRuntime(cudart))
    reference = OnnxRuntimeBackend(exported[0], card, threads=1)
    ir, vis = frame(120, 160)
    for _ in range(3):
        out = backend.run({'ir': ir, 'visible_bgr': vis})
    np.testing.assert_array_equal(out['fused_bgr'], reference.run({'ir': ir, 'visible_bgr': vis})['fused_bgr'])
    assert out['fused_bgr'].dtype == np.uint8 and out['fused_bgr'].shape == (120, 160, 3)
    context = backend.context
    assert context.set_shape_calls == 2 and backend.reshapes == 2           # two inputs, set once
    assert cudart.calls['cudaMalloc'] == 3 and cudart.calls['cudaMallocHost'] == 3
    assert cudart.calls['cudaStreamCreate'] == 1 and cudart.calls['cudaStreamSynchronize'] == 3
    small_ir, small_vis = frame(60, 80, seed=1)                              # smaller: new shapes, same buffers
    out = backend.run({'ir': small_ir, 'visible_bgr': small_vis})
    np.testing.assert_array_equal(out['fused_bgr'],
                                  reference.run({'ir': small_ir, 'visible_bgr': small_vis})['fused_bgr'])
    assert context.set_shape_calls == 4 and cudart.calls['cudaMalloc'] == 3
    big_ir, big_vis = frame(240, 320, seed=2)                                # larger: buffers grow once
    backend.run({'ir': big_ir, 'visible_bgr': big_vis})
    assert cudart.calls['cudaMalloc'] == 6 and cudart.calls['cudaFree'] == 3
    backend.close()
    assert not cudart.memory                                                 # everything freed


def test_float_graph_and_mask_outputs(exported, exported_sgfusion, tmp_path):
    for model in (exported[1], exported_sgfusion[0]):
        plan, _, trt, cudart = build(model, tmp_path / model.stem)
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


def test_pipeline_on_tensorrt_equals_pipeline_on_onnxruntime(exported, tmp_path):
    plan, _, trt, cudart = build(exported[0], tmp_path)
    card = load_card(exported[0])
    trt_pipe = FusionPipeline(card, TensorRTBackend(plan, card, trt=trt, cuda=CudaRuntime(cudart)))
    ort_pipe = FusionPipeline.from_model(exported[0], threads=1)
    from tests.model_fixtures import PAIRS
    from fusion_ros.imageio import read_ir, read_visible
    ir, vis = read_ir(PAIRS / 'ir' / 'FLIR_00006.jpg'), read_visible(PAIRS / 'vi' / 'FLIR_00006.jpg')
    np.testing.assert_array_equal(trt_pipe.fuse(ir, vis).fused_bgr, ort_pipe.fuse(ir, vis).fused_bgr)
