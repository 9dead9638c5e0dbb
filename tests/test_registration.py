"""IR -> visible registration: validation of the configuration and the three resampling modes."""

import dataclasses

from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
import numpy as np
import pytest

from fusion_ros.core.registration import make_registration, register_ir, Registration, REGISTRATION_MODES

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def translation(tx: float, ty: float) -> tuple[float, ...]:
    return (1.0, 0.0, tx, 0.0, 1.0, ty, 0.0, 0.0, 1.0)


@pytest.mark.parametrize('mode', REGISTRATION_MODES)
def test_valid_modes_build(mode):
    reg = make_registration(mode, IDENTITY if mode == 'homography' else None)
    assert reg.mode == mode
    assert (reg.matrix is not None) == (mode == 'homography')


def test_homography_is_normalised_to_nine_floats_and_frozen():
    reg = make_registration('homography', np.eye(3) * 2)
    assert reg.homography == tuple(2.0 * v for v in IDENTITY)
    assert all(type(v) is float for v in reg.homography)
    np.testing.assert_array_equal(reg.matrix, np.eye(3) * 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reg.mode = 'none'
    assert hash(reg) == hash(make_registration('homography', [[2, 0, 0], [0, 2, 0], [0, 0, 2]]))


def test_empty_homography_means_not_given():
    assert make_registration('resize', []).homography is None


@pytest.mark.parametrize('mode, homography, match', [
    ('affine', None, r"unknown registration mode 'affine'; valid modes: none, resize, homography"),
    (None, None, r'unknown registration mode None'),
    ('homography', None, r"mode 'homography' needs a homography: 9 numbers"),
    ('homography', [], r"mode 'homography' needs a homography"),
    ('homography', IDENTITY[:8], r'must be 9 numbers \(row-major 3x3\), got 8'),
    ('homography', IDENTITY + (0.0,), r'must be 9 numbers \(row-major 3x3\), got 10'),
    ('homography', [[1, 0], [0, 1, 0]], r'must be 9 numbers'),
    ('homography', ['a'] * 9, r'must be 9 numbers'),
    ('homography', (1.0, 0.0, float('nan'), 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), r'non-finite entries'),
    ('homography', (1.0, 0.0, 0.0, 0.0, float('inf'), 0.0, 0.0, 0.0, 1.0), r'non-finite entries'),
    ('homography', (0.0,) * 9, r'singular'),
    ('homography', (1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0, 0.0, 1.0), r'singular \(determinant'),
    ('homography', (1e6, 0.0, 0.0, 0.0, 1e6, 0.0, 0.0, 0.0, 1e-9), r'singular'),
    ('resize', IDENTITY, r"homography was given but registration mode is 'resize'"),
])
def test_bad_configurations_are_rejected(mode, homography, match):
    with pytest.raises(ValueError, match=match):
        make_registration(mode, homography)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match='unknown registration mode'):
        Registration('warp')


def test_tiny_but_well_conditioned_homography_is_accepted():
    make_registration('homography', tuple(1e-8 * v for v in IDENTITY))


@given(st.sampled_from([np.uint8, np.uint16]).flatmap(
    lambda dtype: arrays(dtype, st.tuples(st.integers(1, 12), st.integers(1, 12)))))
@settings(max_examples=40, deadline=None)
def test_identity_homography_returns_the_input(ir):
    out = register_ir(ir, ir.shape, make_registration('homography', IDENTITY))
    assert out.dtype == ir.dtype
    np.testing.assert_array_equal(out, ir)


@given(st.integers(-5, 5), st.integers(-5, 5), st.sampled_from([np.uint8, np.uint16]))
@settings(max_examples=40, deadline=None)
def test_translation_homography_shifts_pixels(tx, ty, dtype):
    ir = (np.arange(1, 9 * 11 + 1).reshape(9, 11) * (1 if dtype == np.uint8 else 601)).astype(dtype)
    vis_shape = (12, 10, 3)
    out = register_ir(ir, vis_shape, make_registration('homography', translation(tx, ty)))
    assert out.shape == vis_shape[:2] and out.dtype == dtype
    expected = np.zeros(vis_shape[:2], dtype)
    for y in range(ir.shape[0]):
        for x in range(ir.shape[1]):
            if 0 <= y + ty < vis_shape[0] and 0 <= x + tx < vis_shape[1]:
                expected[y + ty, x + tx] = ir[y, x]
    np.testing.assert_array_equal(out, expected)


def test_scaling_homography_maps_ir_corners_onto_visible_corners():
    ir = np.zeros((10, 20), np.uint16)
    ir[0, 0], ir[9, 19] = 1000, 2000
    reg = make_registration('homography', (2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0))
    out = register_ir(ir, (20, 40), reg)
    assert out[0, 0] == 1000 and out[18, 38] == 2000


def test_resize_to_a_larger_size():
    ir = np.array([[0, 100], [200, 250]], np.uint8)
    out = register_ir(ir, (4, 6, 3), make_registration('resize'))
    assert out.shape == (4, 6) and out.dtype == np.uint8
    assert out[0, 0] == 0 and out[-1, -1] == 250
    assert np.all(np.diff(out.astype(int), axis=1) >= 0) and np.all(np.diff(out.astype(int), axis=0) >= 0)


def test_resize_of_16_bit_keeps_depth():
    ir = np.full((3, 5), 40000, np.uint16)
    out = register_ir(ir, (6, 10), make_registration('resize'))
    assert out.dtype == np.uint16 and out.shape == (6, 10)
    np.testing.assert_array_equal(out, 40000)


@pytest.mark.parametrize('mode', ['none', 'resize'])
def test_equal_sizes_pass_through_unchanged(mode):
    ir = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert register_ir(ir, (3, 4), make_registration(mode)) is ir


def test_none_mode_rejects_different_sizes():
    with pytest.raises(ValueError, match=r"mode 'none' needs equal sizes, but the infrared image is 4x3 and the "
                                         r'visible image is 8x6'):
        register_ir(np.zeros((3, 4), np.uint8), (6, 8, 3), make_registration('none'))


@pytest.mark.parametrize('ir, vis_shape, match', [
    (np.zeros((3, 4, 3), np.uint8), (3, 4), r'single-channel \(H, W\), got shape \(3, 4, 3\)'),
    (np.zeros((3, 4), np.float32), (3, 4), r'uint8 or uint16, got float32'),
    (np.zeros((3, 4), np.uint8), (0, 4), r'visible image has zero size: width=4, height=0'),
    (np.zeros((3, 4), np.uint8), (3,), r'visible shape must start with \(height, width\)'),
])
def test_register_ir_rejects_bad_input(ir, vis_shape, match):
    with pytest.raises(ValueError, match=match):
        register_ir(ir, vis_shape, make_registration('resize'))
