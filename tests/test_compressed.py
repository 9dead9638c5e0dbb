"""image_transport compressed conventions: topics, format strings, JPEG/PNG at 8 and 16 bit, bad payloads."""

import array
import struct
import zlib

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from fusion_ros.core import compressed
from fusion_ros.core.compressed import CompressedImageError


def scene(height: int = 48, width: int = 64) -> np.ndarray:
    """Return a smooth colour gradient: JPEG keeps it within a few levels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)],
                    axis=-1).astype(np.uint8)


def test_topics_follow_image_transport():
    assert compressed.transport_topic('visible/image', 'compressed') == 'visible/image/compressed'
    assert compressed.transport_topic('/ir/image/', 'compressed') == '/ir/image/compressed'
    assert compressed.transport_topic('ir/image', 'raw') == 'ir/image'
    with pytest.raises(ValueError, match='theora'):
        compressed.transport_topic('ir/image', 'theora')


@pytest.mark.parametrize('text,expected', [
    ('bgr8; jpeg compressed bgr8', 'jpeg'),
    ('rgb8; jpeg compressed bgr8', 'jpeg'),
    ('mono16; png compressed mono16', 'png'),
    ('jpeg', 'jpeg'),
    ('PNG', 'png'),
    ('jpg', 'jpeg'),
])
def test_format_strings(text, expected):
    assert compressed.parse_format(text) == expected


@pytest.mark.parametrize('text', ['16UC1; compressedDepth png', 'h264', '', 'bgr8; webp compressed bgr8'])
def test_unknown_formats_are_refused_by_name(text):
    with pytest.raises(CompressedImageError, match='unsupported compressed format'):
        compressed.parse_format(text)


def test_jpeg_colour_round_trip_within_jpeg_error():
    image = scene()
    fmt, payload = compressed.encode(image, 'bgr8', 'jpeg', quality=95)
    assert fmt == 'bgr8; jpeg compressed bgr8'
    decoded, encoding = compressed.decode(fmt, array.array('B', payload.tobytes()))
    assert encoding == 'bgr8' and decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - image.astype(int)).mean() < 2.0


def test_jpeg_quality_trades_size():
    image = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    assert compressed.encode(image, 'bgr8', quality=30)[1].size < compressed.encode(image, 'bgr8', quality=95)[1].size


def test_jpeg_mono_stays_single_channel():
    gray = scene()[..., 0]
    fmt, payload = compressed.encode(gray, 'mono8', 'jpeg')
    decoded, encoding = compressed.decode(fmt, payload.tobytes())
    assert encoding == 'mono8' and decoded.shape == gray.shape


def test_png_16_bit_thermal_stays_16_bit_and_exact():
    counts = (29000 + np.arange(48 * 64).reshape(48, 64)).astype(np.uint16)   # radiometric counts, not 0..255
    fmt, payload = compressed.encode(counts, 'mono16', 'png')
    assert fmt == 'mono16; png compressed mono16'
    decoded, encoding = compressed.decode(fmt, bytes(payload))
    assert encoding == 'mono16' and decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, counts)


def test_bare_format_decodes_by_signature():
    image = scene()
    _, payload = compressed.encode(image, 'bgr8', 'png')
    decoded, encoding = compressed.decode('png', list(payload))
    assert encoding == 'bgr8'
    np.testing.assert_array_equal(decoded, image)


def test_reduced_jpeg_decode_halves_the_size():
    image = scene(96, 128)
    fmt, payload = compressed.encode(image, 'bgr8', quality=95)
    half, encoding = compressed.decode(fmt, payload, reduction=2)
    assert encoding == 'bgr8' and half.shape == (48, 64, 3)
    gray, encoding = compressed.decode(fmt, payload, reduction=4, color=False)
    assert encoding == 'mono8' and gray.shape == (24, 32)
    _, png = compressed.encode(image, 'bgr8', 'png')
    with pytest.raises(ValueError, match='PNG cannot be decoded at reduced size'):
        compressed.decode('png', png, reduction=2)


@pytest.mark.parametrize('codec,encoding', [('jpeg', 'bgr8'), ('png', 'mono16')])
def test_truncated_payloads_raise_a_clear_error(codec, encoding):
    image = scene() if encoding == 'bgr8' else scene()[..., 0].astype(np.uint16) * 200
    fmt, payload = compressed.encode(image, encoding, codec)
    with pytest.raises(CompressedImageError, match=rf'cannot decode {codec.upper()} payload of \d+ bytes'):
        compressed.decode(fmt, payload[:payload.size // 2].tobytes())


@pytest.mark.parametrize('data,match', [(b'', 'neither JPEG nor PNG'), (b'GIF89a....', 'neither JPEG nor PNG'),
                                        (object(), 'bytes-like')])
def test_garbage_payloads_raise_a_clear_error(data, match):
    with pytest.raises(CompressedImageError, match=match):
        compressed.decode('jpeg', data)


def test_encode_refuses_what_the_codec_cannot_hold():
    with pytest.raises(CompressedImageError, match='jpeg encodes mono8, bgr8'):
        compressed.encode(np.zeros((4, 4), np.uint16), 'mono16', 'jpeg')
    with pytest.raises(CompressedImageError, match='needs a uint8 array'):
        compressed.encode(np.zeros((4, 4), np.uint8), 'bgr8', 'jpeg')
    with pytest.raises(ValueError, match='quality'):
        compressed.encode(scene(), 'bgr8', quality=0)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(['jpeg', 'png', 'bgr8; jpeg compressed bgr8', 'mono16; png compressed mono16']),
                 st.text(max_size=40)),
       st.one_of(st.binary(max_size=300), st.sampled_from(['jpeg', 'png']).map(
           lambda kind: bytes(compressed.encode(scene(), 'bgr8', kind)[1]))), st.integers(0, 400),
       st.integers(0, 255))
def test_any_payload_either_decodes_or_raises_a_clear_error(text, payload, cut, flip):
    """Random format strings and bytes, or a real JPEG/PNG cut short or with one byte changed."""
    data = bytearray(payload[:cut] if cut < len(payload) else payload)
    if data and flip:
        data[flip % len(data)] ^= flip
    try:
        image, encoding = compressed.decode(text, bytes(data))
    except CompressedImageError as err:
        assert str(err)
    else:
        assert encoding in ('mono8', 'mono16', 'bgr8', 'bgra8') and image.size


def test_a_header_claiming_too_many_pixels_is_a_clear_error():
    """OpenCV raises (not returns None) for a PNG declaring 100000 x 100000 pixels: still a CompressedImageError."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    png = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 100000, 100000, 8, 0, 0, 0, 0))
           + chunk(b'IDAT', zlib.compress(bytes(10))) + chunk(b'IEND', b''))
    with pytest.raises(CompressedImageError, match='cannot decode PNG payload of 68 bytes'):
        compressed.decode('png', png)
