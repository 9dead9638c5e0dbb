"""The shared pipeline: uint8 graph vs numpy colour reference, gray and 16-bit inputs, registration, errors."""

import numpy as np
import pytest

from fusion_ros.core.imageio import read_ir, read_visible
from fusion_ros.core.pipeline import FusionPipeline, IrGain
from fusion_ros.core.registration import make_registration
from tests.model_fixtures import PAIRS

VIS_HR = PAIRS.parent / 'vi_hr' / 'FLIR_00006.jpg'


@pytest.fixture(scope='module')
def pipelines(exported):
    uint8_path, float_path = exported
    return FusionPipeline.from_model(uint8_path, threads=1), FusionPipeline.from_model(float_path, threads=1)


@pytest.fixture(scope='module')
def pair():
    return read_ir(PAIRS / 'ir' / '00091D.png'), read_visible(PAIRS / 'vi' / '00091D.png')


def test_uint8_graph_matches_numpy_colour_reference(pipelines, pair):
    e2e, reference = pipelines
    a, b = e2e.fuse(*pair).fused_bgr, reference.fuse(*pair).fused_bgr
    assert a.shape == b.shape == pair[1].shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_gray_visible_gives_gray_output(pipelines, pair):
    ir, vis = pair
    fused = pipelines[0].fuse(ir, vis[..., 1].copy()).fused_bgr
    assert np.abs(fused[..., 0].astype(int) - fused[..., 2].astype(int)).max() <= 1


def test_16bit_ir_with_percentile_gain_equals_the_8bit_frame(exported, pair):
    ir, vis = pair
    counts = (ir.astype(np.uint16) * 20 + 7000)  # a radiometric camera's narrow band
    pipe = FusionPipeline.from_model(exported[0], threads=1, ir_gain=IrGain('minmax'))
    stretched = pipe.fuse(counts, vis).fused_bgr
    plain = FusionPipeline.from_model(exported[0], threads=1, ir_gain=IrGain('minmax')).fuse(ir, vis).fused_bgr
    assert np.abs(stretched.astype(int) - plain.astype(int)).max() <= 1


def test_cross_resolution_pair_lands_in_the_visible_frame(pipelines):
    ir = read_ir(PAIRS / 'ir' / 'FLIR_00006.jpg')
    vis = read_visible(VIS_HR)
    assert ir.shape[:2] != vis.shape[:2]
    assert pipelines[0].fuse(ir, vis).fused_bgr.shape == vis.shape


def test_registration_none_rejects_mismatched_sizes(exported, pair):
    pipe = FusionPipeline.from_model(exported[0], threads=1, registration=make_registration('none'))
    with pytest.raises(ValueError, match='size'):
        pipe.fuse(pair[0][:-2], pair[1])


def test_homography_registration_shifts_ir(exported, pair):
    ir, vis = pair
    shift = make_registration('homography', [1, 0, 5, 0, 1, 0, 0, 0, 1])
    pipe = FusionPipeline.from_model(exported[0], threads=1, registration=shift)
    ir8, _ = pipe.prepare(ir, vis)
    np.testing.assert_array_equal(ir8[:, 5:], ir[:, :-5])


@pytest.mark.parametrize('ir, vis, message', [
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), 'single-channel'),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), 'must be uint8'),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 2), np.uint8), r'\(H, W, 3\)'),
])
def test_bad_inputs_are_named(pipelines, ir, vis, message):
    with pytest.raises(ValueError, match=message):
        pipelines[0].fuse(ir, vis)


def test_missing_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='model file not found'):
        FusionPipeline.from_model(tmp_path / 'nope.onnx')


def test_unknown_backend_lists_the_available_ones(exported):
    with pytest.raises(ValueError, match='unknown backend .*available: onnxruntime'):
        FusionPipeline.from_model(exported[0], backend='openvino')
