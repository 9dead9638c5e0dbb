"""
A cheap per-frame alignment score: how well the registered IR frame's edges lie on the visible ones.

The node registers IR into the visible grid anyway; this compares the two edge-orientation fields
(orientation.py) at a small working width, over the part of the visible frame the IR covers.
1 is a perfect match, about 0 unrelated frames. The value depends on the scene, so it is only
meaningful against the score the same rig reached at calibration time: a camera that was knocked
drops it to a fraction of that.
"""

from typing import Optional

import cv2
import numpy as np

from fusion_ros.core.calibration.orientation import orientation_field, to_gray_float
from fusion_ros.core.calibration.pyramid import resized

# Working width of the score: tens of milliseconds per scored frame; an 8-pixel slip of a 640-wide frame shows.
SCORE_WIDTH = 320


def field_correlation(first: np.ndarray, second: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Correlation coefficient of two (H, W, 2) edge fields (zero-mean per channel) over mask, -1..1."""
    if mask is not None:
        first, second = first[mask], second[mask]
    first = first.reshape(-1, 2).astype(np.float64)
    second = second.reshape(-1, 2).astype(np.float64)
    if len(first) < 16:
        return 0.0
    first = first - first.mean(axis=0)
    second = second - second.mean(axis=0)
    norm = float(np.sqrt(np.sum(first * first) * np.sum(second * second)))
    return float(np.sum(first * second) / norm) if norm > 0 else 0.0


def alignment_score(ir_registered: np.ndarray, visible: np.ndarray, footprint: Optional[np.ndarray] = None,
                    width: int = SCORE_WIDTH) -> float:
    """
    Score how well an IR frame already resampled onto the visible grid lines up with the visible frame.

    footprint (bool, visible grid) marks the pixels the IR camera sees; without it the whole frame
    counts. The border of the footprint is left out (the warp's black surround would be an edge).
    """
    if ir_registered.shape[:2] != visible.shape[:2]:
        raise ValueError(f'the registered IR frame is {ir_registered.shape[1]}x{ir_registered.shape[0]} but the '
                         f'visible frame is {visible.shape[1]}x{visible.shape[0]}: register the IR first')
    factor = min(1.0, width / visible.shape[1])
    ir_small = resized(to_gray_float(ir_registered), factor)[0]
    vis_small = resized(to_gray_float(visible), factor)[0]
    mask = None
    if footprint is not None:
        small = cv2.resize(footprint.astype(np.uint8), (vis_small.shape[1], vis_small.shape[0]),
                           interpolation=cv2.INTER_NEAREST)
        mask = cv2.erode(small, np.ones((7, 7), np.uint8)).astype(bool)
    return field_correlation(orientation_field(ir_small), orientation_field(vis_small), mask)


def footprint_of(homography: np.ndarray, ir_shape: tuple[int, int], vis_shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of the visible pixels an IR frame of ir_shape (h, w) covers through an IR -> visible homography."""
    ones = np.full(ir_shape[:2], 255, np.uint8)
    return cv2.warpPerspective(ones, homography, (vis_shape[1], vis_shape[0]), flags=cv2.INTER_NEAREST) > 0
