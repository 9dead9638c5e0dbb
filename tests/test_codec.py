"""Image message <-> numpy conversion: layouts, padding, byte order, errors and the real sensor_msgs Image."""

import array
from dataclasses import dataclass
from pathlib import Path
import subprocess
import sys
from typing import Any

from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
import numpy as np
import pytest

from fusion_ros.ros import codec

SHAPES = {'mono8': (1, np.uint8), '8UC1': (1, np.uint8), 'mono16': (1, np.uint16), '16UC1': (1, np.uint16),
          'bgr8': (3, np.uint8), 'rgb8': (3, np.uint8), 'bgra8': (4, np.uint8), 'rgba8': (4, np.uint8)}
CONTAINERS = {
    'bytes': bytes,
    'bytearray': bytearray,
    'array': lambda raw: array.array('B', raw),
    'list': list,
    'memoryview': memoryview,
}


@dataclass
class FakeImage:
    """The Image fields without ROS."""

    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: Any


def shape_for(encoding: str, height: int, width: int) -> tuple[int, ...]:
    channels, _ = SHAPES[encoding]
    return (height, width) if channels == 1 else (height, width, channels)


def padded_message(image: np.ndarray, encoding: str, pad: int, bigendian: bool = False, container=bytes,
                   filler: int = 0xA5) -> FakeImage:
    """Lay out rows with `pad` extra bytes each, as a driver with aligned rows would."""
    height, width = image.shape[:2]
    order = '>' if bigendian else '<'
    rows = np.ascontiguousarray(image.astype(image.dtype.newbyteorder(order))).view(np.uint8).reshape(height, -1)
    padded = np.full((height, rows.shape[1] + pad), filler, np.uint8)
    padded[:, :rows.shape[1]] = rows
    return FakeImage(height, width, encoding, bigendian, padded.shape[1], container(padded.tobytes()))


@st.composite
def images(draw, encodings=codec.SUPPORTED_ENCODINGS):
    encoding = draw(st.sampled_from(encodings))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    image = draw(arrays(SHAPES[encoding][1], shape_for(encoding, height, width)))
    return encoding, image


def test_supported_encodings_are_the_documented_ones():
    assert set(codec.SUPPORTED_ENCODINGS) == set(SHAPES)


@given(images(), st.integers(0, 7), st.sampled_from(sorted(CONTAINERS)))
@settings(max_examples=150, deadline=None)
def test_padded_message_decodes_to_the_original_array(case, pad, container):
    encoding, image = case
    decoded = codec.image_to_array(padded_message(image, encoding, pad, container=CONTAINERS[container]))
    assert decoded.dtype == image.dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)


@given(images())
@settings(max_examples=100, deadline=None)
def test_array_to_fields_round_trip(case):
    encoding, image = case
    fields = codec.array_to_fields(image, encoding)
    assert fields['is_bigendian'] is False
    assert fields['step'] == image.shape[1] * (image.size // (image.shape[0] * image.shape[1])) * image.itemsize
    assert len(fields['data']) == fields['step'] * fields['height']
    np.testing.assert_array_equal(codec.image_to_array(FakeImage(**fields)), image)


@given(images(encodings=('mono16', '16UC1')), st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_big_endian_16_bit_decodes_to_native_values(case, pad):
    encoding, image = case
    decoded = codec.image_to_array(padded_message(image, encoding, pad, bigendian=True))
    assert decoded.dtype == np.uint16 and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)


def test_big_endian_bytes_are_read_most_significant_first():
    msg = FakeImage(1, 2, 'mono16', True, 4, bytes([0x12, 0x34, 0xAB, 0xCD]))
    np.testing.assert_array_equal(codec.image_to_array(msg), [[0x1234, 0xABCD]])
    msg.is_bigendian = False
    np.testing.assert_array_equal(codec.image_to_array(msg), [[0x3412, 0xCDAB]])


def test_odd_step_for_16_bit_rows_is_honoured():
    image = np.array([[1, 65535], [258, 7]], np.uint16)
    np.testing.assert_array_equal(codec.image_to_array(padded_message(image, 'mono16', 1)), image)


def test_bgr8_bytes_without_padding_is_zero_copy():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    msg = FakeImage(4, 5, 'bgr8', False, 15, image.tobytes())
    decoded = codec.image_to_array(msg)
    assert np.shares_memory(decoded, np.frombuffer(msg.data, np.uint8))
    assert not decoded.flags.writeable  # bytes are immutable; the view must not pretend otherwise


def test_padded_bytearray_is_a_writable_strided_view():
    image = np.arange(3 * 4, dtype=np.uint8).reshape(3, 4)
    msg = padded_message(image, 'mono8', 3, container=bytearray)
    decoded = codec.image_to_array(msg)
    assert decoded.strides == (7, 1)
    decoded[0, 0] = 200
    assert msg.data[0] == 200


def test_longer_data_than_needed_is_accepted():
    msg = FakeImage(1, 2, 'mono8', False, 2, bytes([1, 2, 3, 4]))
    np.testing.assert_array_equal(codec.image_to_array(msg), [[1, 2]])


@pytest.mark.parametrize('msg, match', [
    (FakeImage(2, 2, 'bgr16', False, 12, bytes(24)), r"unsupported image encoding 'bgr16'; supported: mono8, 8UC1"),
    (FakeImage(0, 2, 'mono8', False, 2, b''), r'zero size: width=2, height=0'),
    (FakeImage(2, 0, 'mono8', False, 0, b''), r'zero size: width=0, height=2'),
    (FakeImage(2, 3, 'bgr8', False, 8, bytes(16)), r'step 8 is smaller than width \* bytes per pixel = 3 \* 3 = 9'),
    (FakeImage(2, 3, 'mono16', False, 6, bytes(11)), r'too short: 11 bytes, but step \* rows = 6 \* 2 = 12'),
    (FakeImage(1, 2, 'mono8', False, 2, [1, 300]), r'byte values 0\.\.255'),
    (FakeImage(1, 2, 'mono8', False, 2, 12), r'bytes-like object or a list of ints, got int'),
])
def test_image_to_array_rejects_bad_messages(msg, match):
    with pytest.raises(ValueError, match=match):
        codec.image_to_array(msg)


@pytest.mark.parametrize('image, encoding, match', [
    (np.zeros((2, 2), np.uint8), 'bayer_rggb8', r"unsupported image encoding 'bayer_rggb8'; supported: .*rgba8"),
    (np.zeros((2, 2), np.uint16), 'mono8', r'encoding mono8 needs a uint8 array, got uint16'),
    (np.zeros((2, 2), np.uint8), '16UC1', r'encoding 16UC1 needs a uint16 array, got uint8'),
    (np.zeros((2, 2), np.float32), 'mono16', r'needs a uint16 array, got float32'),
    (np.zeros((2, 2, 3), np.uint8), 'mono8', r'mono8 needs an array of shape \(H, W\), got shape \(2, 2, 3\)'),
    (np.zeros((2, 2, 4), np.uint8), 'bgr8', r'bgr8 needs an array of shape \(H, W, 3\), got shape \(2, 2, 4\)'),
    (np.zeros((2, 2), np.uint8), 'rgba8', r'rgba8 needs an array of shape \(H, W, 4\), got shape \(2, 2\)'),
    (np.zeros((0, 3), np.uint8), 'mono8', r'zero size: width=3, height=0'),
])
def test_array_to_fields_rejects_mismatched_arrays(image, encoding, match):
    with pytest.raises(ValueError, match=match):
        codec.array_to_fields(image, encoding)


def test_array_to_fields_packs_non_contiguous_and_big_endian_arrays():
    wide = np.arange(2 * 6, dtype=np.uint16).reshape(2, 6) * 1000
    view = wide[:, ::2].astype('>u2')
    fields = codec.array_to_fields(view, 'mono16')
    assert fields['step'] == 6 and isinstance(fields['data'], array.array) and fields['data'].typecode == 'B'
    np.testing.assert_array_equal(codec.image_to_array(FakeImage(**fields)), wide[:, ::2])


def test_single_channel_array_with_trailing_axis_is_accepted():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    np.testing.assert_array_equal(codec.image_to_array(FakeImage(**codec.array_to_fields(image, 'mono8'))),
                                  image[..., 0])


def test_real_sensor_msgs_image_round_trip_and_zero_copy():
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    header = Header(stamp=Time(sec=12, nanosec=34), frame_id='visible_optical')
    msg = codec.array_to_image(image, 'rgb8', header)
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (48, 64, 'rgb8', 192, False)
    assert msg.header.frame_id == 'visible_optical' and msg.header.stamp.sec == 12
    decoded = codec.image_to_array(msg)
    np.testing.assert_array_equal(decoded, image)
    assert np.shares_memory(decoded, np.frombuffer(msg.data, np.uint8))  # rclpy's array.array, wrapped in place

    ir = np.array([[0, 1], [4095, 65535]], np.uint16)
    ir_msg = codec.array_to_image(ir, 'mono16')
    assert ir_msg.header.frame_id == ''
    np.testing.assert_array_equal(codec.image_to_array(ir_msg), ir)


def test_to_bgr_converts_every_encoding():
    bgr = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    assert codec.to_bgr(bgr, 'bgr8') is bgr
    np.testing.assert_array_equal(codec.to_bgr(bgr[..., ::-1], 'rgb8'), bgr)
    alpha = np.full((1, 2, 1), 255, np.uint8)
    np.testing.assert_array_equal(codec.to_bgr(np.concatenate([bgr, alpha], axis=2), 'bgra8'), bgr)
    np.testing.assert_array_equal(codec.to_bgr(np.concatenate([bgr[..., ::-1], alpha], axis=2), 'rgba8'), bgr)
    gray = np.array([[0, 128, 255]], np.uint8)
    for encoding in ('mono8', '8UC1'):
        out = codec.to_bgr(gray, encoding)
        assert out.shape == (1, 3, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(codec.to_bgr(np.array([[0, 257 * 128, 65535]], np.uint16), 'mono16')[..., 1],
                                  [[0, 128, 255]])


def test_to_bgr_accepts_a_padded_read_only_view():
    image = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    decoded = codec.image_to_array(padded_message(image, 'rgb8', 5))
    assert not decoded.flags.c_contiguous
    np.testing.assert_array_equal(codec.to_bgr(decoded, 'rgb8'), image[..., ::-1])


def test_to_mono_keeps_depth_and_converts_colour():
    ir16 = np.array([[0, 1000], [40000, 65535]], np.uint16)
    assert codec.to_mono(ir16, '16UC1').dtype == np.uint16
    np.testing.assert_array_equal(codec.to_mono(ir16, 'mono16'), ir16)
    ir8 = np.array([[3, 200]], np.uint8)
    assert codec.to_mono(ir8, 'mono8') is ir8
    bgr = np.array([[[255, 0, 0], [0, 0, 255], [90, 90, 90]]], np.uint8)
    expected = np.array([[29, 76, 90]], np.uint8)  # 0.114 B, 0.299 R, gray stays gray
    np.testing.assert_array_equal(codec.to_mono(bgr, 'bgr8'), expected)
    np.testing.assert_array_equal(codec.to_mono(bgr[..., ::-1], 'rgb8'), expected)
    alpha = np.zeros((1, 3, 1), np.uint8)
    np.testing.assert_array_equal(codec.to_mono(np.concatenate([bgr, alpha], axis=2), 'bgra8'), expected)
    np.testing.assert_array_equal(codec.to_mono(np.concatenate([bgr[..., ::-1], alpha], axis=2), 'rgba8'), expected)


def test_to_helpers_validate_the_array():
    with pytest.raises(ValueError, match=r'bgr8 needs an array of shape \(H, W, 3\)'):
        codec.to_bgr(np.zeros((2, 2), np.uint8), 'bgr8')
    with pytest.raises(ValueError, match=r'mono16 needs a uint16 array, got uint8'):
        codec.to_mono(np.zeros((2, 2), np.uint8), 'mono16')


def test_modules_import_without_ros_or_torch():
    code = ('import sys, fusion_ros.core.registration; '
            'from fusion_ros.ros import codec, health, stamps, stats, worker, log_throttle, pairing, mailbox; '
            'bad = [m for m in ("rclpy", "torch", "sensor_msgs") if m in sys.modules]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60, cwd=Path(__file__).resolve().parents[1])


def test_a_long_encoding_is_not_echoed_whole():
    msg = padded_message(np.zeros((2, 2), np.uint8), 'mono8', pad=0)
    msg.encoding = 'x' * 1000
    with pytest.raises(ValueError, match=r'\(1000 characters\)') as err:
        codec.image_to_array(msg)
    assert len(str(err.value)) < 300      # the list of decodable encodings, not the 1000 characters
