"""Camera encodings and compressed frames through the message layer (codec) and the gain parameters."""

import array
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from fusion_ros.core import compressed
from fusion_ros.core.color import ir_to_unit
from fusion_ros.ros import codec
from fusion_ros.ros.node_params import BY_NAME, ir_gain, problems
from tests.test_codec import FakeImage


@dataclass
class FakeCompressed:
    """The CompressedImage fields without ROS."""

    format: str
    data: Any


def padded(rows: np.ndarray, pad: int) -> bytes:
    """Return buffer rows (uint8, 2-D) with pad filler bytes after each, as a driver aligning rows writes them."""
    out = np.full((rows.shape[0], rows.shape[1] + pad), 0xA5, np.uint8)
    out[:, :rows.shape[1]] = rows
    return out.tobytes()


def test_nv12_message_with_padded_rows_decodes_to_its_colour():
    height, width, pad = 4, 6, 2
    luma = np.full((height, width), 81, np.uint8)                       # BT.601 red: Y 81, U 90, V 240
    chroma = np.tile(np.array([90, 240], np.uint8), (height // 2, width // 2))
    msg = FakeImage(height, width, 'nv12', False, width + pad, padded(np.vstack([luma, chroma]), pad))
    bgr = codec.to_bgr(codec.image_to_array(msg), 'nv12')
    assert bgr.shape == (height, width, 3)
    np.testing.assert_allclose(bgr.reshape(-1, 3).astype(int), [[0, 0, 255]] * (height * width), atol=4)


def test_yuyv_message_gives_its_luma_as_infrared():
    pairs = np.array([[[10, 128], [20, 128], [30, 128], [40, 128]]], np.uint8)   # Y U Y V ...
    msg = FakeImage(1, 4, 'yuv422_yuy2', False, 8, array.array('B', pairs.tobytes()))
    np.testing.assert_array_equal(codec.to_mono(codec.image_to_array(msg), 'yuv422_yuy2'), [[10, 20, 30, 40]])


@pytest.mark.parametrize('bigendian', (False, True))
def test_32fc1_message_in_either_byte_order_becomes_counts(bigendian):
    temps = np.array([[20.0, 40.0]], np.float32)
    raw = temps.astype('>f4' if bigendian else '<f4').view(np.uint8).reshape(1, -1)
    msg = FakeImage(1, 2, '32FC1', bigendian, 8, raw.tobytes())
    counts = codec.to_mono(codec.image_to_array(msg), '32FC1', 'celsius')
    np.testing.assert_array_equal(counts, [[29315, 31315]])


def test_bayer16_message_is_demosaiced():
    raw = np.zeros((4, 4), np.uint16)
    raw[0::2, 0::2] = 65535                           # RGGB: only the red sites lit
    msg = FakeImage(4, 4, 'bayer_rggb16', False, 8, raw.astype('<u2').tobytes())
    bgr = codec.to_bgr(codec.image_to_array(msg), 'bayer_rggb16')
    np.testing.assert_array_equal(bgr[1, 1], [0, 0, 255])


def test_camera_encodings_name_their_size_rules():
    with pytest.raises(ValueError, match='nv12 needs a width divisible by 2'):
        codec.image_to_array(FakeImage(4, 5, 'nv12', False, 5, bytes(30)))
    with pytest.raises(ValueError, match=r'step \* rows = 4 \* 6 = 24 bytes are needed for 4 lines of nv12'):
        codec.image_to_array(FakeImage(4, 4, 'nv12', False, 4, bytes(16)))


def test_camera_encodings_cannot_be_written():
    with pytest.raises(ValueError, match="unsupported image encoding 'nv12'"):
        codec.array_to_fields(np.zeros((6, 4), np.uint8), 'nv12')


def test_compressed_message_decodes_and_builds():
    counts = (30000 + np.arange(12, dtype=np.uint16)).reshape(3, 4)
    text, payload = compressed.encode(counts, 'mono16', 'png')
    array16, encoding = codec.message_to_array(FakeCompressed(text, array.array('B', payload.tobytes())))
    assert encoding == 'mono16'
    np.testing.assert_array_equal(codec.to_mono(array16, encoding), counts)
    bgr = np.full((8, 8, 3), 200, np.uint8)
    msg = codec.array_to_compressed(bgr, 'bgr8', 80)
    assert msg.format == 'bgr8; jpeg compressed bgr8'
    assert codec.is_compressed(msg) and not codec.is_compressed(FakeImage(1, 1, 'mono8', False, 1, b'\0'))
    decoded, _ = codec.message_to_array(msg)
    assert np.abs(decoded.astype(int) - 200).max() <= 2


def defaults(**changes) -> dict:
    """Return every parameter's default with the changes (dots written as double underscores)."""
    values = {name: param.default for name, param in BY_NAME.items()}
    values.update({k.replace('__', '.'): v for k, v in changes.items()})
    return values


def test_temperature_gain_maps_degrees_through_the_radiometric_law():
    values = defaults(ir_gain__mode='temperature', ir_gain__temperature_low=20.0, ir_gain__temperature_high=40.0)
    gain = ir_gain(values)
    assert (gain.mode, gain.low, gain.high) == ('fixed', pytest.approx(29315.0), pytest.approx(31315.0))
    frame = np.array([[29315, 30315, 31315]], np.uint16)
    np.testing.assert_allclose(ir_to_unit(frame, gain.mode, gain.low, gain.high), [[0.0, 0.5, 1.0]], atol=1e-6)
    optris = defaults(ir_gain__mode='temperature', ir__radiometric_scale=0.1, ir__radiometric_offset=173.15,
                      ir_gain__temperature_low=0.0, ir_gain__temperature_high=100.0)
    assert (ir_gain(optris).low, ir_gain(optris).high) == (pytest.approx(1000.0), pytest.approx(2000.0))


def test_an_unreachable_temperature_range_is_refused_with_its_reason():
    values = defaults(ir_gain__mode='temperature', ir_gain__temperature_low=500.0, ir_gain__temperature_high=900.0)
    assert any('ir_gain.temperature_low/high' in reason and 'outside 0 .. 65535' in reason
               for reason in problems(values))
    assert not problems(defaults())


@pytest.mark.parametrize('encoding', codec.DECODABLE_ENCODINGS)
def test_every_decodable_encoding_gives_a_visible_or_an_infrared_frame(encoding):
    """A 4x4 frame of each encoding, packed rows, decodes to BGR uint8 (or, 32FC1, to IR counts only)."""
    layout = codec._READ_LAYOUTS[encoding]
    rows = int(4 * layout.rows_per_line)
    step = 4 * layout.channels * layout.itemsize
    data = np.full(rows * step, 100, np.uint8).tobytes()
    array = codec.image_to_array(FakeImage(4, 4, encoding, False, step, data))
    ir = codec.to_mono(array, encoding)
    assert ir.shape == (4, 4) and ir.dtype in (np.uint8, np.uint16)
    if encoding == '32FC1':
        with pytest.raises(ValueError, match='cannot be a visible image'):
            codec.to_bgr(array, encoding)
    else:
        bgr = codec.to_bgr(array, encoding)
        assert bgr.shape == (4, 4, 3) and bgr.dtype == np.uint8
