"""
One pair of frames at the resolutions the alignment works at, coarse to fine.

The two cameras see the scene at different pixel sizes (a 320x256 thermal frame may span 1000
visible pixels), so each level resizes both frames to one common scene resolution before their
edge fields are computed: the same edge then has the same width in both fields. The finest level
is the IR camera's own resolution (or the visible one's, whichever is coarser): finer visible
detail has no IR counterpart.
"""

from dataclasses import dataclass
import math

import cv2
import numpy as np

from fusion_ros.core.calibration.geometry import resample_matrix
from fusion_ros.core.calibration.orientation import orientation_field

# The coarsest level is about this many visible pixels wide.
COARSEST_WIDTH = 80


@dataclass(frozen=True)
class PairLevel:
    """Edge fields of one pair at one level, and how full-resolution pixels map to this level's pixels."""

    vis_field: np.ndarray        # (h, w, 2) visible edge field
    ir_field: np.ndarray         # (h', w', 2) IR edge field
    ir_dx: np.ndarray            # its derivatives along x and y, for the Gauss-Newton Jacobian
    ir_dy: np.ndarray
    vis_to_level: np.ndarray     # 3x3: full-resolution visible pixel -> this level's visible pixel
    ir_to_level: np.ndarray      # 3x3: full-resolution IR pixel -> this level's IR pixel


def resized(image: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize by about factor (area averaging when shrinking); also return the exact pixel mapping."""
    h, w = image.shape[:2]
    new_w, new_h = max(8, int(round(w * factor))), max(8, int(round(h * factor)))
    if (new_w, new_h) == (w, h):
        return image, np.eye(3)
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return out, resample_matrix(new_w / w, new_h / h)


def level_factors(scale: float, vis_width: int) -> list[tuple[float, float]]:
    """
    (visible factor, IR factor) per level, coarse to fine, for an IR -> visible scale.

    The finest level keeps the coarser camera at its own resolution; each coarser level halves both.
    """
    if scale >= 1.0:
        finest = (1.0 / scale, 1.0)
    else:
        finest = (1.0, scale)
    count = max(1, int(math.floor(math.log2(max(1.0, vis_width * finest[0] / COARSEST_WIDTH)))) + 1)
    return [(finest[0] / 2 ** k, finest[1] / 2 ** k) for k in reversed(range(count))]


def build_level(ir_gray: np.ndarray, vis_gray: np.ndarray, vis_factor: float, ir_factor: float) -> PairLevel:
    """Edge fields of a pair (gray float images) resized by the given factors."""
    vis_small, vis_map = resized(vis_gray, vis_factor)
    ir_small, ir_map = resized(ir_gray, ir_factor)
    ir_field = orientation_field(ir_small)
    ir_dx = cv2.Sobel(ir_field, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    ir_dy = cv2.Sobel(ir_field, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return PairLevel(orientation_field(vis_small), ir_field, ir_dx, ir_dy, vis_map, ir_map)
