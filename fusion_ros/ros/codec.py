"""
Convert between sensor_msgs/msg/Image-like objects and numpy arrays.

Kept free of rclpy and sensor_msgs at import time so the node, bag replay and
the tests share one decoder that runs without a ROS installation. Decoding
works on any object with the Image fields (height, width, encoding,
is_bigendian, step, data); only ``array_to_image`` needs sensor_msgs, and it
imports it when called.

Decoded arrays are views on the message buffer whenever no byte swap is
needed, so a 640x480 frame costs no copy; they may be read-only (bytes data)
and they alias the message, so copy before modifying them in place.

Camera encodings beyond the plain ones (Bayer, YUV 4:2:2, NV12/NV21, 32FC1) are read
here into their buffer form and converted by core.pixel_formats; CompressedImage
messages (anything with a `format` field) are decoded by core.compressed. Both only
decode: what the node publishes is always one of SUPPORTED_ENCODINGS.
"""

import array as _array
from typing import Any, NamedTuple, Optional

import cv2
import numpy as np

from fusion_ros.core import compressed, pixel_formats
from fusion_ros.ros.echo import short_repr


class _Layout(NamedTuple):
    """Pixel layout of one encoding."""

    channels: int
    itemsize: int  # bytes per channel value
    kind: str = 'u'                 # numpy kind of a value: unsigned or float
    rows_per_line: float = 1.0      # buffer rows per image line (NV12: 1.5)

    @property
    def bytes_per_pixel(self) -> int:
        """Return the bytes one pixel occupies in a row."""
        return self.channels * self.itemsize


_LAYOUTS = {
    'mono8': _Layout(1, 1),
    '8UC1': _Layout(1, 1),
    'mono16': _Layout(1, 2),
    '16UC1': _Layout(1, 2),
    'bgr8': _Layout(3, 1),
    'rgb8': _Layout(3, 1),
    'bgra8': _Layout(4, 1),
    'rgba8': _Layout(4, 1),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
# Read-only camera encodings: their layouts as core.pixel_formats describes them.
_READ_LAYOUTS = {**_LAYOUTS, **{
    name: _Layout(raw.channels, np.dtype(raw.dtype).itemsize, np.dtype(raw.dtype).kind, raw.rows_per_line)
    for name, raw in pixel_formats.LAYOUTS.items()}}
DECODABLE_ENCODINGS: tuple[str, ...] = tuple(_READ_LAYOUTS)
# What an unknown-encoding error lists (the eight Bayer names as one pattern).
_READ_NAMES = ', '.join([*SUPPORTED_ENCODINGS, 'bayer_<rggb|bggr|gbrg|grbg><8|16>',
                         *(e for e in pixel_formats.ENCODINGS if e not in pixel_formats.BAYER)])

# Colour -> BGR and colour -> gray conversions; BGR and the mono encodings are handled separately.
_TO_BGR = {'rgb8': cv2.COLOR_RGB2BGR, 'bgra8': cv2.COLOR_BGRA2BGR, 'rgba8': cv2.COLOR_RGBA2BGR}
_TO_GRAY = {'bgr8': cv2.COLOR_BGR2GRAY, 'rgb8': cv2.COLOR_RGB2GRAY,
            'bgra8': cv2.COLOR_BGRA2GRAY, 'rgba8': cv2.COLOR_RGBA2GRAY}


def _layout(encoding: str, reading: bool = False) -> _Layout:
    """Look up an encoding (reading: the camera encodings too), naming it and the supported ones when unknown."""
    table, names = (_READ_LAYOUTS, _READ_NAMES) if reading else (_LAYOUTS, ', '.join(SUPPORTED_ENCODINGS))
    try:
        return table[encoding]
    except (KeyError, TypeError):
        raise ValueError(f'unsupported image encoding {short_repr(encoding)}; supported: {names}') from None


def _as_byte_array(data: Any) -> np.ndarray:
    """
    View the message data as a flat uint8 array, copying only when the container has no usable buffer.

    rclpy hands out array.array('B') (or bytes); both expose the buffer protocol, so
    np.frombuffer wraps them without a copy. Lists and non-contiguous memoryviews
    have no flat buffer and are copied.
    """
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (OverflowError, TypeError) as exc:
            raise ValueError(f'image data must hold byte values 0..255: {exc}') from None
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (BufferError, ValueError):
        return np.frombuffer(memoryview(data).tobytes(), dtype=np.uint8)
    except TypeError:
        raise ValueError(f'image data must be a bytes-like object or a list of ints, got {type(data).__name__}') \
            from None


def image_to_array(msg: Any) -> np.ndarray:
    """
    Decode an Image-like message into an (H, W) or (H, W, C) uint8/uint16 array.

    Row padding (step > width * bytes per pixel) is skipped with strides rather
    than copied. 16-bit data in the other byte order than the host's is swapped
    into a native-endian copy; everything else is a view on ``msg.data``. The
    camera encodings come back in their buffer form (NV12: H * 3 / 2 rows; YUV
    4:2:2: (H, W, 2) byte pairs; 32FC1: float32) for to_bgr / to_mono.
    """
    encoding = msg.encoding
    layout = _layout(encoding, reading=True)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f'image has zero size: width={width}, height={height}')
    if encoding in pixel_formats.LAYOUTS:
        pixel_formats.check_size(encoding, height, width)
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ValueError(f'step {step} is smaller than width * bytes per pixel = {width} * '
                         f'{layout.bytes_per_pixel} = {row_bytes} for {encoding}')
    buffer = _as_byte_array(msg.data)
    rows = int(height * layout.rows_per_line)
    needed = step * rows
    if buffer.size < needed:
        raise ValueError(f'image data is too short: {buffer.size} bytes, but step * rows = '
                         f'{step} * {rows} = {needed} bytes are needed for {height} lines of {encoding}')
    if layout.itemsize == 1:
        dtype = np.dtype(np.uint8)
    else:
        dtype = np.dtype(f'{">" if msg.is_bigendian else "<"}{layout.kind}{layout.itemsize}')
    if layout.channels == 1:
        shape: tuple[int, ...] = (rows, width)
        strides: tuple[int, ...] = (step, layout.itemsize)
    else:
        shape = (rows, width, layout.channels)
        strides = (step, layout.bytes_per_pixel, layout.itemsize)
    array = np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder('='))
    return array


def _check_array(array: np.ndarray, encoding: str) -> _Layout:
    """Check that an array's dtype and shape can be stored as ``encoding``; return its layout."""
    layout = _layout(encoding)
    expected_dtype = np.uint8 if layout.itemsize == 1 else np.uint16
    if array.dtype.kind != 'u' or array.dtype.itemsize != layout.itemsize:
        raise ValueError(f'encoding {encoding} needs a {np.dtype(expected_dtype).name} array, got {array.dtype}')
    if layout.channels == 1:
        fits = array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1)
        expected_shape = '(H, W)'
    else:
        fits = array.ndim == 3 and array.shape[2] == layout.channels
        expected_shape = f'(H, W, {layout.channels})'
    if not fits:
        raise ValueError(f'encoding {encoding} needs an array of shape {expected_shape}, got shape {array.shape}')
    return layout


def array_to_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """
    Return the Image fields (height, width, encoding, is_bigendian, step, data) for an array.

    Rows are packed (step = width * bytes per pixel) and 16-bit data is written
    little-endian, so ``is_bigendian`` is always False. ``data`` is an
    array.array('B') filled with one copy: it is the type rclpy stores, so the
    Image.data setter keeps it as is instead of converting (or, with
    ROS_PYTHON_CHECK_FIELDS set, validating every byte of) a bytes object.
    """
    array = np.asarray(array)
    layout = _check_array(array, encoding)
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f'image has zero size: width={width}, height={height}')
    if layout.itemsize == 2:
        array = array.astype('<u2', copy=False)
    data = _array.array('B')
    data.frombytes(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    return {
        'height': int(height),
        'width': int(width),
        'encoding': encoding,
        'is_bigendian': False,
        'step': int(width) * layout.bytes_per_pixel,
        'data': data,
    }


def array_to_image(array: np.ndarray, encoding: str, header: Optional[Any] = None) -> Any:
    """Build a sensor_msgs/msg/Image from an array, importing sensor_msgs only now."""
    from sensor_msgs.msg import Image

    fields = array_to_fields(array, encoding)
    data = fields.pop('data')
    msg = Image(**fields)
    msg.data = data  # assigned after construction: Image(data=...) would copy it once more
    if header is not None:
        msg.header = header
    return msg


def to_bgr(array: np.ndarray, encoding: str) -> np.ndarray:
    """
    Return a decoded visible frame as uint8 (H, W, 3) BGR, the form the fusion pipeline takes.

    bgr8 is returned as is (no copy); mono frames are replicated to three equal
    planes so the colour maths sees neutral chroma; 16-bit mono is scaled from
    the full 0..65535 range to 0..255. Bayer, YUV and NV frames are converted by
    core.pixel_formats.
    """
    array = np.asarray(array)
    if encoding in pixel_formats.LAYOUTS:
        return pixel_formats.to_bgr8(array, encoding)
    _check_array(array, encoding)
    if encoding == 'bgr8':
        return array
    if encoding in _TO_BGR:
        return cv2.cvtColor(array, _TO_BGR[encoding])
    plane = array if array.ndim == 2 else array[..., 0]
    if plane.dtype.itemsize == 2:
        plane = cv2.convertScaleAbs(plane.astype(np.uint16, copy=False), alpha=255.0 / 65535.0)
    return cv2.cvtColor(plane, cv2.COLOR_GRAY2BGR)


def to_mono(array: np.ndarray, encoding: str, unit: str = 'celsius',
            radiometry: pixel_formats.Radiometry = pixel_formats.Radiometry()) -> np.ndarray:
    """
    Return a decoded infrared frame as a single (H, W) plane, keeping its bit depth.

    Mono frames pass through (8-bit as uint8, 16-bit as native uint16) so the
    IR gain can use the full radiometric range; colour frames are converted to
    gray with OpenCV's luma weights. 32FC1 temperatures (in `unit`) become
    uint16 counts of `radiometry`; YUV and NV frames give their luma plane.
    """
    array = np.asarray(array)
    if encoding in pixel_formats.LAYOUTS:
        return pixel_formats.to_ir_plane(array, encoding, unit, radiometry)
    _check_array(array, encoding)
    if encoding in _TO_GRAY:
        return cv2.cvtColor(array, _TO_GRAY[encoding])
    plane = array if array.ndim == 2 else array[..., 0]
    return plane if plane.dtype.isnative else plane.astype(plane.dtype.newbyteorder('='))


def from_bgr(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a uint8 BGR image to an output encoding (bgr8, rgb8 or mono8)."""
    if encoding == 'bgr8':
        return bgr
    if encoding == 'rgb8':
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if encoding == 'mono8':
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    raise ValueError(f'unsupported output encoding {short_repr(encoding)}; expected bgr8, rgb8 or mono8')


def is_compressed(msg: Any) -> bool:
    """Return whether msg is a sensor_msgs/CompressedImage (it has a format string instead of an encoding)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def message_to_array(msg: Any) -> tuple[np.ndarray, str]:
    """
    Decode an Image or a CompressedImage; return (array, encoding) for to_bgr / to_mono.

    A payload that cannot be decoded raises compressed.CompressedImageError (a ValueError).
    """
    if is_compressed(msg):
        return compressed.decode(msg.format, msg.data)
    return image_to_array(msg), msg.encoding


def array_to_compressed(array: np.ndarray, encoding: str, quality: int, header: Optional[Any] = None) -> Any:
    """Build a sensor_msgs/msg/CompressedImage holding array as JPEG, importing sensor_msgs only now."""
    from sensor_msgs.msg import CompressedImage

    text, payload = compressed.encode(array, encoding, 'jpeg', quality)
    data = _array.array('B')
    data.frombytes(payload)
    msg = CompressedImage(format=text)
    msg.data = data
    if header is not None:
        msg.header = header
    return msg
