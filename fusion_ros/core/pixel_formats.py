"""
Raw camera pixel formats beyond plain mono/BGR: Bayer mosaics, packed YUV 4:2:2, NV12/NV21, thermal.

ROS-free and pure: every function takes the frame as the numpy array its message buffer holds
(the codec cuts the rows out of the message: `buffer_rows` says how many) and returns a plain
image. Visible frames become BGR, infrared frames one plane, so the fusion pipeline never sees
the camera's format.

Naming: ROS's `bayer_rggb8` names the 2x2 tile from the top-left pixel (R G / G B). OpenCV's legacy
two-letter codes (`COLOR_BayerBG2BGR` for that same tile) name it from the second row and column;
the four-letter aliases (`COLOR_BayerRGGB2BGR`) follow the ROS reading. Only those are used here,
and tests/test_pixel_formats.py checks them on a synthetic tile.

Radiometric thermal cameras either send counts (`mono16` / `16UC1`) with a documented linear
scale (FLIR's TLinear modes: 0.01 K or 0.1 K per count; Optris: (count - 1000) / 10 degC), or
temperatures as `32FC1`. Temperatures are turned into counts of a chosen scale here, so the IR
gain only ever handles integer counts, and a gain range given in degC or K becomes a count range.
"""

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

KELVIN_AT_0_CELSIUS = 273.15
TEMPERATURE_UNITS = ('celsius', 'kelvin')


class BufferLayout(NamedTuple):
    """How one encoding's pixels lie in the message buffer."""

    channels: int            # values per pixel position in a row
    dtype: str               # numpy dtype of one value, little-endian form ('u1', '<u2', '<f4')
    rows_per_line: float     # buffer rows per image line (NV12: 1.5, a full Y plane plus half-height UV)
    width_multiple: int      # width must be a multiple of this (4:2:2 and 4:2:0 share chroma across 2 pixels)
    height_multiple: int


_BAYER_TILES = {'rggb': cv2.COLOR_BayerRGGB2BGR, 'bggr': cv2.COLOR_BayerBGGR2BGR,
                'gbrg': cv2.COLOR_BayerGBRG2BGR, 'grbg': cv2.COLOR_BayerGRBG2BGR}
BAYER = {f'bayer_{tile}{bits}': code for tile, code in _BAYER_TILES.items() for bits in (8, 16)}
# sensor_msgs image_encodings: yuv422 is UYVY, yuv422_yuy2 is YUYV; Humble and later also name them uyvy / yuyv.
YUV422 = {'yuv422': cv2.COLOR_YUV2BGR_UYVY, 'uyvy': cv2.COLOR_YUV2BGR_UYVY,
          'yuv422_yuy2': cv2.COLOR_YUV2BGR_YUYV, 'yuyv': cv2.COLOR_YUV2BGR_YUYV}
_LUMA_CHANNEL = {'yuv422': 1, 'uyvy': 1, 'yuv422_yuy2': 0, 'yuyv': 0}   # where Y sits in each 2-byte pair
NV = {'nv12': cv2.COLOR_YUV2BGR_NV12, 'nv21': cv2.COLOR_YUV2BGR_NV21}

LAYOUTS: dict[str, BufferLayout] = {
    **{name: BufferLayout(1, '<u2' if name.endswith('16') else 'u1', 1, 2, 2) for name in BAYER},
    **{name: BufferLayout(2, 'u1', 1, 2, 1) for name in YUV422},
    **{name: BufferLayout(1, 'u1', 1.5, 2, 2) for name in NV},
    '32FC1': BufferLayout(1, '<f4', 1, 1, 1),
}
ENCODINGS: tuple[str, ...] = tuple(LAYOUTS)


def buffer_rows(encoding: str, height: int) -> int:
    """Return how many buffer rows (of `step` bytes) a frame of `height` lines occupies."""
    return int(height * LAYOUTS[encoding].rows_per_line)


def check_size(encoding: str, height: int, width: int) -> None:
    """Raise ValueError when a frame size cannot hold whole chroma or mosaic tiles for the encoding."""
    layout = LAYOUTS[encoding]
    if width % layout.width_multiple or height % layout.height_multiple:
        raise ValueError(f'{encoding} needs a width divisible by {layout.width_multiple} and a height divisible '
                         f'by {layout.height_multiple}, got {width}x{height}')


def _checked(array: np.ndarray, encoding: str, family: dict, what: str) -> int:
    """
    Check that array is the buffer form of encoding, a member of family; return the image height.

    The form follows from the layout: buffer_rows(height) rows of width positions, with the
    layout's channels as a third axis when there are several.
    """
    if encoding not in family:
        raise ValueError(f'{encoding!r} is not {what}; expected one of {", ".join(family)}')
    layout = LAYOUTS[encoding]
    if array.ndim < 2:
        raise ValueError(f'{encoding} buffer must be 2-D or 3-D, got shape {array.shape}')
    height, width = int(round(array.shape[0] / layout.rows_per_line)), array.shape[1]
    check_size(encoding, height, width)
    shape = (buffer_rows(encoding, height), width) + ((layout.channels,) if layout.channels > 1 else ())
    if array.shape != shape or array.dtype.kind != 'u':
        raise ValueError(f'{encoding} buffer must be an unsigned integer array of shape {shape}, got '
                         f'{array.dtype} {array.shape}')
    return height


def demosaic(raw: np.ndarray, encoding: str) -> np.ndarray:
    """
    Return a Bayer mosaic as BGR of the same depth (uint8 or uint16), by OpenCV's bilinear demosaicing.

    Bilinear is OpenCV's only method for both 8 and 16 bits; edge-aware or VNG methods cost several
    times more per frame and are left to camera drivers that debayer on their own hardware.
    """
    _checked(raw, encoding, BAYER, 'a Bayer encoding')
    bits = 16 if encoding.endswith('16') else 8
    if raw.dtype.itemsize * 8 != bits:
        raise ValueError(f'{encoding} holds {bits}-bit values, got a {raw.dtype} array')
    return cv2.cvtColor(raw, BAYER[encoding])


def yuv422_to_bgr(packed: np.ndarray, encoding: str) -> np.ndarray:
    """Return a packed 4:2:2 frame ((H, W, 2) uint8: UYVY or YUYV byte pairs) as BGR uint8 (BT.601)."""
    _checked(packed, encoding, YUV422, 'a packed YUV 4:2:2 encoding')
    return cv2.cvtColor(np.ascontiguousarray(packed), YUV422[encoding])


def yuv422_luma(packed: np.ndarray, encoding: str) -> np.ndarray:
    """Return the Y plane of a packed 4:2:2 frame: an infrared camera's gray values, with no colour maths."""
    _checked(packed, encoding, YUV422, 'a packed YUV 4:2:2 encoding')
    return packed[..., _LUMA_CHANNEL[encoding]]


def nv_to_bgr(planes: np.ndarray, encoding: str) -> np.ndarray:
    """Return an NV12/NV21 frame ((H * 3 / 2, W) uint8: Y plane, then interleaved chroma) as BGR uint8."""
    _checked(planes, encoding, NV, 'a semi-planar 4:2:0 encoding')
    return cv2.cvtColor(np.ascontiguousarray(planes), NV[encoding])


def nv_luma(planes: np.ndarray, encoding: str) -> np.ndarray:
    """Return the Y plane of an NV12/NV21 frame (a view, no copy)."""
    return planes[:_checked(planes, encoding, NV, 'a semi-planar 4:2:0 encoding')]


@dataclass(frozen=True)
class Radiometry:
    """
    A thermal camera's linear counts-to-temperature law: kelvin = offset_k + scale_k * count.

    The defaults are FLIR's TLinear high-resolution mode (Lepton, Boson, A-series): centikelvin,
    0.01 K per count from 0 K, so 16-bit counts reach 655.35 K (382 degC).
    """

    scale_k: float = 0.01      # kelvin per count
    offset_k: float = 0.0      # kelvin at count 0

    def __post_init__(self):
        if not (np.isfinite(self.scale_k) and self.scale_k > 0):
            raise ValueError(f'radiometric scale must be a positive number of kelvin per count, got {self.scale_k}')
        if not np.isfinite(self.offset_k):
            raise ValueError(f'radiometric offset must be a finite number of kelvin, got {self.offset_k}')

    def to_count(self, temperature: float, unit: str) -> float:
        """Return the (fractional) count a temperature in degC or K corresponds to."""
        return (to_kelvin(temperature, unit) - self.offset_k) / self.scale_k


def to_kelvin(temperature, unit: str):
    """Return a temperature (scalar or array) in kelvin from degC or K."""
    if unit == 'kelvin':
        return temperature
    if unit == 'celsius':
        return temperature + KELVIN_AT_0_CELSIUS
    raise ValueError(f'temperature unit must be one of {", ".join(TEMPERATURE_UNITS)}, got {unit!r}')


def temperatures_to_counts(temperatures: np.ndarray, unit: str, radiometry: Radiometry = Radiometry()) -> np.ndarray:
    """
    Return a 32FC1 temperature image as uint16 counts of `radiometry` (rounded, clipped to 0..65535).

    Not-a-number pixels (drivers mark dead or out-of-range pixels so) become 0, the coldest count,
    instead of poisoning a min-max or percentile gain.
    """
    if temperatures.ndim != 2 or temperatures.dtype.kind != 'f':
        raise ValueError(f'a temperature image must be a 2-D float array, got {temperatures.dtype} '
                         f'{temperatures.shape}')
    counts = (to_kelvin(temperatures.astype(np.float32), unit) - np.float32(radiometry.offset_k)) \
        / np.float32(radiometry.scale_k)
    counts = np.nan_to_num(counts, nan=0.0, posinf=65535.0, neginf=0.0)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def count_range(low: float, high: float, unit: str, radiometry: Radiometry = Radiometry()) -> tuple[float, float]:
    """
    Return the count range [low, high] temperatures (degC or K) map to, for a fixed IR gain.

    Raises ValueError when the range is empty or lies outside what 16-bit counts of this law can
    represent, naming the temperatures and the counts they gave.
    """
    if not high > low:
        raise ValueError(f'temperature range needs high > low, got {low} .. {high} {unit}')
    lo, hi = radiometry.to_count(low, unit), radiometry.to_count(high, unit)
    if hi <= 0 or lo >= 65535:
        raise ValueError(f'temperature range {low} .. {high} {unit} is counts {lo:.0f} .. {hi:.0f} at '
                         f'{radiometry.scale_k} K per count from {radiometry.offset_k} K: outside 0 .. 65535')
    return max(lo, 0.0), min(hi, 65535.0)


def to_bgr8(array: np.ndarray, encoding: str) -> np.ndarray:
    """
    Return a visible frame of one of these encodings as BGR uint8, the form the pipeline fuses.

    16-bit Bayer is scaled from the full 0..65535 range, as the codec does for mono16.
    """
    if encoding in BAYER:
        bgr = demosaic(array, encoding)
        return bgr if bgr.dtype == np.uint8 else cv2.convertScaleAbs(bgr, alpha=255.0 / 65535.0)
    if encoding in YUV422:
        return yuv422_to_bgr(array, encoding)
    if encoding in NV:
        return nv_to_bgr(array, encoding)
    raise ValueError(f'{encoding!r} cannot be a visible image: it is not a colour or gray camera encoding')


def to_ir_plane(array: np.ndarray, encoding: str, unit: str = 'celsius',
                radiometry: Radiometry = Radiometry()) -> np.ndarray:
    """
    Return an infrared frame of one of these encodings as one plane, uint8 or uint16 counts.

    Luma is taken as is from YUV frames (no colour round trip); Bayer is demosaiced and made gray
    at its own depth; 32FC1 temperatures in `unit` become counts of `radiometry`.
    """
    if encoding in BAYER:
        return cv2.cvtColor(demosaic(array, encoding), cv2.COLOR_BGR2GRAY)
    if encoding in YUV422:
        return yuv422_luma(array, encoding)
    if encoding in NV:
        return nv_luma(array, encoding)
    if encoding == '32FC1':
        return temperatures_to_counts(array, unit, radiometry)
    raise ValueError(f'{encoding!r} is not one of the raw camera encodings {", ".join(ENCODINGS)}')
