"""
Compressed images as image_transport carries them: JPEG and PNG payloads with a format string.

ROS-free and pure (bytes in, arrays out), so the node, bag make/replay and the benchmarks share one
decoder and encoder. The conventions are image_transport's `compressed` plugin's:

* topic: `<base topic>/compressed` (`visible/image` -> `visible/image/compressed`);
* format: `<source encoding>; <jpeg|png> compressed <stored encoding>`, e.g. `bgr8; jpeg compressed
  bgr8` or `mono16; png compressed mono16`; older drivers write a bare `jpeg` or `png`.

The payload's own signature decides how it is decoded (OpenCV reads the codec from the bytes as
well); the format string only has to name a codec this module knows. A 16-bit PNG decodes to
uint16 (a radiometric thermal frame keeps its counts); JPEG is 8-bit. Whatever cannot be decoded
raises CompressedImageError, a ValueError that names the problem and the payload's size.
"""

import cv2
import numpy as np

TRANSPORTS = ('raw', 'compressed')
CODECS = ('jpeg', 'png')
_SIGNATURES = {'jpeg': b'\xff\xd8\xff', 'png': b'\x89PNG\r\n\x1a\n'}
REDUCTIONS = (1, 2, 4, 8)    # libjpeg decodes at 1/2, 1/4 and 1/8 size inside its DCT, skipping most of the work
_REDUCED = {(2, True): cv2.IMREAD_REDUCED_COLOR_2, (4, True): cv2.IMREAD_REDUCED_COLOR_4,
            (8, True): cv2.IMREAD_REDUCED_COLOR_8, (2, False): cv2.IMREAD_REDUCED_GRAYSCALE_2,
            (4, False): cv2.IMREAD_REDUCED_GRAYSCALE_4, (8, False): cv2.IMREAD_REDUCED_GRAYSCALE_8}
_JPEG_ENCODINGS = ('mono8', 'bgr8')
_PNG_ENCODINGS = ('mono8', 'mono16', 'bgr8')


class CompressedImageError(ValueError):
    """A compressed payload or format string that cannot be decoded, or an array that cannot be encoded."""


def transport_topic(base: str, transport: str) -> str:
    """Return the topic image_transport uses for a base topic and transport ('raw': the base itself)."""
    if transport not in TRANSPORTS:
        raise ValueError(f'transport must be one of {", ".join(TRANSPORTS)}, got {transport!r}')
    return base if transport == 'raw' else f'{base.rstrip("/")}/compressed'


def parse_format(text: str) -> str:
    """
    Return the codec ('jpeg' or 'png') a CompressedImage format string names.

    Accepts image_transport's `<enc>; <codec> compressed <enc>` and a bare `jpeg` / `png` (case and
    spaces are not significant). `compressedDepth` (the depth-image transport, with its own header)
    and any other codec are refused, naming the string. The encodings in the string are not needed:
    the decoded array's depth and channels say what it holds.
    """
    if not isinstance(text, str):
        raise CompressedImageError(f'format must be a string, got {type(text).__name__}')
    words = text.rpartition(';')[2].lower().split()
    codec = words[0] if words else ''
    if codec == 'jpg':
        codec = 'jpeg'
    if codec not in CODECS or (len(words) > 1 and words[1] != 'compressed'):
        raise CompressedImageError(f'unsupported compressed format {text[:80]!r}: expected image_transport\'s '
                                   '"<encoding>; jpeg compressed <encoding>", "<encoding>; png compressed '
                                   '<encoding>", or a bare "jpeg" / "png"')
    return codec


def _payload(data) -> np.ndarray:
    """View the message data (bytes, array.array, list of ints, numpy) as a flat uint8 array."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        raise CompressedImageError(f'payload must be bytes-like, got {type(data).__name__}') from None


def _sniff(payload: np.ndarray) -> str:
    """Return the codec whose signature the payload starts with."""
    head = payload[:8].tobytes()
    for codec, signature in _SIGNATURES.items():
        if head.startswith(signature):
            return codec
    raise CompressedImageError(f'payload of {payload.size} bytes is neither JPEG nor PNG (starts with '
                               f'{head.hex(" ") or "nothing"})')


def decode(text: str, data, reduction: int = 1, color: bool = True) -> tuple[np.ndarray, str]:
    """
    Decode a CompressedImage's format string and payload; return (array, encoding).

    The encoding is one the codec module handles: mono8, mono16, bgr8 or bgra8. 16-bit colour PNG is
    scaled to 8 bits (a visible frame is fused as 8-bit anyway). With reduction 2, 4 or 8 a JPEG is
    decoded at that fraction of its size inside libjpeg (`color` then picks BGR or gray); PNG has
    no reduced decoding, so a reduction other than 1 is refused for it.
    """
    parse_format(text)
    if reduction not in REDUCTIONS:
        raise ValueError(f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
    payload = _payload(data)
    codec = _sniff(payload)
    if reduction == 1:
        flags = cv2.IMREAD_UNCHANGED
    elif codec == 'jpeg':
        flags = _REDUCED[(reduction, bool(color))]
    else:
        raise ValueError(f'PNG cannot be decoded at reduced size (reduction {reduction}); use 1')
    try:
        image = cv2.imdecode(payload, flags)
    except cv2.error as err:     # e.g. a header declaring more pixels than OpenCV's limit
        raise CompressedImageError(f'cannot decode {codec.upper()} payload of {payload.size} bytes (format '
                                   f'{text[:80]!r}): {str(err).strip().splitlines()[-1][:120]}') from None
    if image is None or image.size == 0:
        raise CompressedImageError(f'cannot decode {codec.upper()} payload of {payload.size} bytes (format '
                                   f'{text[:80]!r}): truncated or corrupt')
    if image.ndim == 3 and image.dtype == np.uint16:
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)
    if image.ndim == 2:
        return image, 'mono16' if image.dtype == np.uint16 else 'mono8'
    if image.shape[2] == 4:
        return image, 'bgra8'
    return image, 'bgr8'


def encode(array: np.ndarray, encoding: str, codec: str = 'jpeg', quality: int = 90,
           png_level: int = 3) -> tuple[str, np.ndarray]:
    """
    Encode an image for a CompressedImage; return (format string, payload as a flat uint8 array).

    JPEG takes mono8 and bgr8 (quality 1..100); PNG also mono16, kept 16-bit (compression level
    0..9: 3 is within a few percent of 9's size at a fraction of its time).
    """
    allowed = {'jpeg': _JPEG_ENCODINGS, 'png': _PNG_ENCODINGS}.get(codec)
    if allowed is None:
        raise CompressedImageError(f'codec must be one of {", ".join(CODECS)}, got {codec!r}')
    if encoding not in allowed:
        raise CompressedImageError(f'{codec} encodes {", ".join(allowed)}, not {encoding!r}')
    expected = (np.uint16 if encoding == 'mono16' else np.uint8, 3 if encoding == 'bgr8' else 2)
    if array.dtype != expected[0] or array.ndim != expected[1] or (array.ndim == 3 and array.shape[2] != 3):
        raise CompressedImageError(f'{encoding} needs a {np.dtype(expected[0]).name} array of '
                                   f'{"(H, W, 3)" if expected[1] == 3 else "(H, W)"} shape, got {array.dtype} '
                                   f'{array.shape}')
    if codec == 'jpeg':
        if not 1 <= quality <= 100:
            raise ValueError(f'JPEG quality must be in 1..100, got {quality}')
        ok, payload = cv2.imencode('.jpg', array, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        if not 0 <= png_level <= 9:
            raise ValueError(f'PNG compression level must be in 0..9, got {png_level}')
        ok, payload = cv2.imencode('.png', array, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise CompressedImageError(f'OpenCV could not encode a {array.shape} {encoding} image as {codec}')
    return f'{encoding}; {codec} compressed {encoding}', payload.reshape(-1)
