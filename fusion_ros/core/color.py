"""
Colour maths shared by the runtime, the exported graphs' tests and training.

The networks only see luminance in [0, 1]; colour is carried around them with
the YCrCb convention of the SeAFusion code (methods.md, "Colour"). All
functions take and return float32 arrays in [0, 1] unless stated.
"""

import math
from typing import Optional

import cv2
import numpy as np

# Forward and inverse coefficients of methods.md; the exported uint8 graph uses the same numbers.
Y_WEIGHTS_RGB = (0.299, 0.587, 0.114)
CR_SCALE, CB_SCALE = 0.713, 0.564
R_FROM_CR, G_FROM_CR, G_FROM_CB, B_FROM_CB = 1.403, 0.714, 0.344, 1.773

IR_GAIN_MODES = ('fixed', 'minmax', 'percentile')


def to_unit(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 image to float32 [0, 1]."""
    if image.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image, got {image.dtype}')
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float image to uint8, clamping out-of-range values."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def bgr_to_ycrcb(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a (H, W, 3) BGR image in [0, 1] into Y, Cr, Cb planes."""
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    y = Y_WEIGHTS_RGB[0] * r + Y_WEIGHTS_RGB[1] * g + Y_WEIGHTS_RGB[2] * b
    return y, CR_SCALE * (r - y) + 0.5, CB_SCALE * (b - y) + 0.5


def ycrcb_to_bgr(y: np.ndarray, cr: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Recombine Y, Cr, Cb planes into a (H, W, 3) BGR image clamped to [0, 1]."""
    dr, db = cr - 0.5, cb - 0.5
    bgr = np.stack([y + B_FROM_CB * db, y - G_FROM_CR * dr - G_FROM_CB * db, y + R_FROM_CR * dr], axis=-1)
    return np.clip(bgr, 0.0, 1.0).astype(np.float32)


def merge_chroma(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """
    Merge one chroma plane of two colour sources, weighting each by |C - 0.5|.

    Where both sources are neutral (weights sum to zero) the result is neutral.
    """
    w1, w2 = np.abs(c1 - 0.5), np.abs(c2 - 0.5)
    total = w1 + w2
    merged = np.where(total > 0, (c1 * w1 + c2 * w2) / np.where(total > 0, total, 1.0), 0.5)
    return merged.astype(np.float32)


def ir_to_unit(ir: np.ndarray, mode: str = 'fixed', low: float = 0.0, high: Optional[float] = None,
               percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """
    Map an 8- or 16-bit infrared image to float32 [0, 1].

    Radiometric thermal cameras send 16-bit counts that occupy a narrow band of
    the range, so a plain /65535 gives a black image. Modes:
    ``fixed`` maps [low, high] linearly (high defaults to the dtype maximum);
    ``minmax`` stretches each frame's own range; ``percentile`` stretches the
    given percentiles (robust to hot spots).
    """
    if ir.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'infrared image must be uint8 or uint16, got {ir.dtype}')
    data = ir.astype(np.float32)
    if mode == 'fixed':
        lo, hi = float(low), float(np.iinfo(ir.dtype).max if high is None else high)
    elif mode == 'minmax':
        lo, hi = float(data.min()), float(data.max())
    elif mode == 'percentile':
        p_lo, p_hi = percentiles
        if not 0.0 <= p_lo < p_hi <= 100.0:
            raise ValueError(f'percentiles must satisfy 0 <= low < high <= 100, got {percentiles}')
        lo, hi = (float(v) for v in np.percentile(data, [p_lo, p_hi]))
    else:
        raise ValueError(f'unknown IR gain mode {mode!r}; expected one of {IR_GAIN_MODES}')
    if mode == 'fixed' and hi <= lo:
        raise ValueError(f'fixed IR range needs high > low, got low={lo}, high={hi}')
    if hi <= lo:  # a flat frame: nothing to stretch
        return np.zeros(ir.shape, np.float32)
    return np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def fixed_range_to_uint8(ir: np.ndarray, low: float, high: float) -> np.ndarray:
    """
    Map [low, high] of an 8- or 16-bit infrared image linearly onto 0..255 in one integer pass.

    The same mapping as to_uint8(ir_to_unit(ir, 'fixed', low, high)) to within one grey level
    (float32 against float64 rounding), without the float32 copies that made the 16-bit gain a
    large part of the node's `register` stage at 1080p (benchmarks/camera_rate.py). Values are
    clipped to the whole counts inside the range first, so OpenCV's absolute value never sees a
    negative; where that clipping alone would move an end by half a grey level or more (a range
    narrower than the frame's steps, or one outside the dtype), the float path runs instead.
    """
    if ir.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'infrared image must be uint8 or uint16, got {ir.dtype}')
    if not high > low:
        raise ValueError(f'fixed IR range needs high > low, got low={low}, high={high}')
    first, last = math.ceil(low), math.floor(high)
    scale = 255.0 / (high - low)
    if not (0 <= first <= last <= np.iinfo(ir.dtype).max and max(first - low, high - last) * scale < 0.5):
        return to_uint8(ir_to_unit(ir, 'fixed', low, high))
    return cv2.convertScaleAbs(np.clip(ir, first, last), alpha=scale, beta=-low * scale)
