"""Known-answer tests for the raw camera encodings: a synthetic pattern per encoding, decoded and checked."""

import numpy as np
import pytest

from fusion_ros.core import pixel_formats as pf
from fusion_ros.core.color import fixed_range_to_uint8, ir_to_unit, to_uint8

# A colour whose three channels differ, so any channel swap or wrong mosaic phase shows.
B, G, R = 30, 100, 200
TILES = {'rggb': ((R, G), (G, B)), 'bggr': ((B, G), (G, R)), 'gbrg': ((G, B), (R, G)), 'grbg': ((G, R), (B, G))}


def mosaic(tile: str, values: dict, height: int = 8, width: int = 10, dtype=np.uint8) -> np.ndarray:
    """Return a flat-colour scene as the named Bayer sensor records it (top-left 2x2 tile as ROS names it)."""
    raw = np.zeros((height, width), dtype)
    pattern = TILES[tile]
    for dy in range(2):
        for dx in range(2):
            raw[dy::2, dx::2] = values[pattern[dy][dx]]
    return raw


@pytest.mark.parametrize('tile', TILES)
@pytest.mark.parametrize('bits', (8, 16))
def test_bayer_flat_colour_decodes_to_its_bgr(tile, bits):
    scale = 1 if bits == 8 else 250   # 16-bit: values near the top of the range (50000)
    dtype = np.uint8 if bits == 8 else np.uint16
    raw = mosaic(tile, {R: R * scale, G: G * scale, B: B * scale}, dtype=dtype)
    bgr = pf.demosaic(raw, f'bayer_{tile}{bits}')
    assert bgr.dtype == dtype and bgr.shape == (8, 10, 3)
    # bilinear demosaicing of a flat scene is exact away from the border
    np.testing.assert_array_equal(bgr[2:-2, 2:-2].reshape(-1, 3), np.tile([B * scale, G * scale, R * scale],
                                                                          (4 * 6, 1)))


@pytest.mark.parametrize('tile', TILES)
def test_bayer16_visible_scales_full_range_and_ir_keeps_depth(tile):
    raw = mosaic(tile, {R: 65535, G: 65535, B: 0}, dtype=np.uint16)
    vis = pf.to_bgr8(raw, f'bayer_{tile}16')
    assert vis.dtype == np.uint8
    np.testing.assert_array_equal(vis[3, 3], [0, 255, 255])     # yellow: no blue
    ir = pf.to_ir_plane(raw, f'bayer_{tile}16')
    assert ir.dtype == np.uint16 and ir.shape == (8, 10)
    assert abs(int(ir[3, 3]) - round(0.886 * 65535)) <= 2        # gray of yellow: 0.299 + 0.587 of full scale


def test_bayer_rejects_wrong_depth_and_odd_size():
    with pytest.raises(ValueError, match='16-bit'):
        pf.demosaic(np.zeros((4, 4), np.uint8), 'bayer_rggb16')
    with pytest.raises(ValueError, match='divisible by 2'):
        pf.demosaic(np.zeros((5, 4), np.uint8), 'bayer_rggb8')


# BT.601 limited-range colour bars: (Y, U, V) of pure red, green and blue, and their BGR.
BARS = [((81, 90, 240), (0, 0, 255)), ((145, 54, 34), (0, 255, 0)), ((41, 240, 110), (255, 0, 0))]


def packed_422(order: str) -> tuple[np.ndarray, np.ndarray]:
    """One row of 2-pixel groups per bar, in UYVY or YUYV byte order; and the expected BGR image."""
    rows, expected = [], []
    for (y, u, v), bgr in BARS:
        group = (u, y, v, y) if order == 'uyvy' else (y, u, y, v)
        rows.append(np.tile(np.array(group, np.uint8), 2))   # 4 pixels wide
        expected.append(np.tile(np.array(bgr, np.uint8), (4, 1)))
    return np.stack(rows).reshape(len(BARS), 4, 2), np.stack(expected)


@pytest.mark.parametrize('encoding,order', [('yuv422', 'uyvy'), ('uyvy', 'uyvy'), ('yuv422_yuy2', 'yuyv'),
                                            ('yuyv', 'yuyv')])
def test_yuv422_colour_bars(encoding, order):
    packed, expected = packed_422(order)
    bgr = pf.yuv422_to_bgr(packed, encoding)
    assert bgr.shape == (3, 4, 3) and bgr.dtype == np.uint8
    np.testing.assert_allclose(bgr.astype(int), expected.astype(int), atol=4)
    np.testing.assert_array_equal(pf.to_ir_plane(packed, encoding), [[81] * 4, [145] * 4, [41] * 4])


def semi_planar(order: str) -> tuple[np.ndarray, np.ndarray]:
    """Return a 4-row frame of two bars (2 rows each) as NV12 (U first) or NV21 (V first), and the expected BGR."""
    (y1, u1, v1), bgr1 = BARS[0]
    (y2, u2, v2), bgr2 = BARS[2]
    luma = np.array([[y1] * 4, [y1] * 4, [y2] * 4, [y2] * 4], np.uint8)
    first, second = ((u1, v1), (u2, v2)) if order == 'nv12' else ((v1, u1), (v2, u2))
    chroma = np.array([list(first) * 2, list(second) * 2], np.uint8)
    expected = np.array([[bgr1] * 4, [bgr1] * 4, [bgr2] * 4, [bgr2] * 4], np.uint8)
    return np.vstack([luma, chroma]), expected


@pytest.mark.parametrize('encoding', ('nv12', 'nv21'))
def test_nv_colour_bars(encoding):
    planes, expected = semi_planar(encoding)
    assert pf.buffer_rows(encoding, 4) == 6
    bgr = pf.to_bgr8(planes, encoding)
    np.testing.assert_allclose(bgr.astype(int), expected.astype(int), atol=4)
    np.testing.assert_array_equal(pf.to_ir_plane(planes, encoding), planes[:4])


def test_nv12_and_nv21_differ_on_the_same_bytes():
    planes, _ = semi_planar('nv12')
    assert np.abs(pf.nv_to_bgr(planes, 'nv12').astype(int) - pf.nv_to_bgr(planes, 'nv21').astype(int)).max() > 100


def test_32fc1_temperatures_become_centikelvin_counts():
    temps = np.array([[0.0, 26.85], [np.nan, -300.0]], np.float32)
    counts = pf.to_ir_plane(temps, '32FC1', unit='celsius')
    np.testing.assert_array_equal(counts, [[27315, 30000], [0, 0]])
    assert counts.dtype == np.uint16
    kelvin = pf.temperatures_to_counts(np.array([[300.0, 700.0]], np.float32), 'kelvin')
    np.testing.assert_array_equal(kelvin, [[30000, 65535]])      # above 655.35 K saturates


def test_temperature_range_maps_counts_through_the_ir_gain():
    low, high = pf.count_range(20.0, 40.0, 'celsius')            # FLIR TLinear 0.01 K/count
    assert (low, high) == pytest.approx((29315.0, 31315.0))
    frame = np.array([[29315, 30315, 31315, 40000]], np.uint16)   # 20, 30, 40 and 126.85 degC
    np.testing.assert_allclose(ir_to_unit(frame, 'fixed', low, high), [[0.0, 0.5, 1.0, 1.0]], atol=1e-6)


def test_optris_style_law_with_offset():
    optris = pf.Radiometry(scale_k=0.1, offset_k=pf.KELVIN_AT_0_CELSIUS - 100.0)   # degC = (count - 1000) / 10
    assert optris.to_count(0.0, 'celsius') == pytest.approx(1000.0)
    assert optris.to_count(373.15, 'kelvin') == pytest.approx(2000.0)


@pytest.mark.parametrize('args,match', [((40.0, 20.0, 'celsius'), 'high > low'),
                                        ((700.0, 800.0, 'kelvin'), 'outside'),
                                        ((1.0, 2.0, 'fahrenheit'), 'unit')])
def test_bad_temperature_ranges_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        pf.count_range(*args)


def test_bad_radiometry_is_refused():
    with pytest.raises(ValueError, match='positive'):
        pf.Radiometry(scale_k=0.0)


def test_unknown_or_misshapen_buffers_name_the_encoding():
    with pytest.raises(ValueError, match='yuv422'):
        pf.yuv422_to_bgr(np.zeros((2, 4), np.uint8), 'yuv422')
    with pytest.raises(ValueError, match='not a colour'):
        pf.to_bgr8(np.zeros((2, 2), np.float32), '32FC1')
    with pytest.raises(ValueError, match='raw camera encodings'):
        pf.to_ir_plane(np.zeros((2, 2), np.uint8), 'bgr8')


@pytest.mark.parametrize('dtype,low,high', [(np.uint16, 29315.000000000004, 31315.0), (np.uint16, 0.0, 65535.0),
                                            (np.uint16, 1000.5, 1003.2), (np.uint8, 10.0, 200.0),
                                            (np.uint8, 29315.0, 31315.0), (np.uint16, -50.0, 70000.0)])
def test_fast_fixed_gain_matches_the_float_reference(dtype, low, high):
    top = np.iinfo(dtype).max
    frame = np.random.default_rng(3).integers(0, top + 1, (64, 96), dtype=dtype)
    frame[0, :4] = [0, top, min(int(low), top) if low > 0 else 0, min(int(high) + 1, top)]
    reference = to_uint8(ir_to_unit(frame, 'fixed', low, high))
    fast = fixed_range_to_uint8(frame, low, high)
    assert fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - reference.astype(int)).max() <= 1
