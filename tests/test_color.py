"""Colour maths of methods.md and the 16-bit IR gain."""

from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
import numpy as np
import pytest

from fusion_ros.core import color


@given(arrays(np.uint8, (7, 5, 3)))
@settings(max_examples=60, deadline=None)
def test_ycrcb_round_trip_within_one_grey_level(bgr):
    y, cr, cb = color.bgr_to_ycrcb(color.to_unit(bgr))
    back = color.to_uint8(color.ycrcb_to_bgr(y, cr, cb))
    assert np.abs(back.astype(int) - bgr.astype(int)).max() <= 1


def test_gray_input_has_neutral_chroma():
    gray = np.full((4, 4, 3), 0.3, np.float32)
    y, cr, cb = color.bgr_to_ycrcb(gray)
    np.testing.assert_allclose(y, 0.3, atol=1e-6)
    np.testing.assert_allclose(cr, 0.5, atol=1e-6)
    np.testing.assert_allclose(cb, 0.5, atol=1e-6)


def test_merge_chroma_prefers_the_more_saturated_source():
    c1 = np.array([0.5, 0.9, 0.5], np.float32)
    c2 = np.array([0.5, 0.5, 0.2], np.float32)
    merged = color.merge_chroma(c1, c2)
    np.testing.assert_allclose(merged, [0.5, 0.9, 0.2], atol=1e-6)
    both = color.merge_chroma(np.float32([0.7]), np.float32([0.2]))
    assert both[0] == pytest.approx((0.7 * 0.2 + 0.2 * 0.3) / 0.5)


def test_ir_gain_modes_on_radiometric_counts():
    counts = np.array([[7000, 7500], [8000, 9000]], np.uint16)
    np.testing.assert_allclose(color.ir_to_unit(counts, 'minmax'), [[0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(color.ir_to_unit(counts, 'fixed', 7000, 9000), [[0, 0.25], [0.5, 1.0]])
    assert color.ir_to_unit(counts, 'fixed').max() == pytest.approx(9000 / 65535)
    robust = color.ir_to_unit(counts, 'percentile', percentiles=(0.0, 50.0))
    assert robust.min() == 0.0 and robust.max() == 1.0
    assert not color.ir_to_unit(np.full((3, 3), 5, np.uint16), 'minmax').any()


@pytest.mark.parametrize('kwargs, message', [
    ({'mode': 'gamma'}, 'unknown IR gain mode'),
    ({'mode': 'fixed', 'low': 10, 'high': 10}, 'needs high > low'),
    ({'mode': 'percentile', 'percentiles': (60, 40)}, 'percentiles must satisfy'),
])
def test_ir_gain_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        color.ir_to_unit(np.zeros((2, 2), np.uint16), **kwargs)


def test_ir_gain_rejects_float_images():
    with pytest.raises(ValueError, match='uint8 or uint16'):
        color.ir_to_unit(np.zeros((2, 2), np.float32))
