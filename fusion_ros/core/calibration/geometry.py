"""
Homography helpers: resampling matrices, the centred similarity, and the error in IR pixels.

All homographies here take IR pixel coordinates to visible pixel coordinates (the node's
convention) unless a name says otherwise. Pixel centres sit at integer coordinates, as in OpenCV.
"""

import math
from typing import Sequence

import numpy as np


def resample_matrix(scale_x: float, scale_y: float) -> np.ndarray:
    """Map pixel coordinates of an image to those of the same image resized by (scale_x, scale_y)."""
    return np.array([[scale_x, 0.0, 0.5 * scale_x - 0.5],
                     [0.0, scale_y, 0.5 * scale_y - 0.5],
                     [0.0, 0.0, 1.0]])


def centred_similarity(scale: float, angle_deg: float, ir_size: Sequence[int], vis_size: Sequence[int]) -> np.ndarray:
    """IR -> visible: scale and rotate about the IR centre, which lands on the visible centre (sizes are (w, h))."""
    angle = math.radians(angle_deg)
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    ir_cx, ir_cy = (ir_size[0] - 1) / 2.0, (ir_size[1] - 1) / 2.0
    vis_cx, vis_cy = (vis_size[0] - 1) / 2.0, (vis_size[1] - 1) / 2.0
    return np.array([[cos, -sin, vis_cx - cos * ir_cx + sin * ir_cy],
                     [sin, cos, vis_cy - sin * ir_cx - cos * ir_cy],
                     [0.0, 0.0, 1.0]])


def apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 3x3 homography."""
    ones = np.ones((points.shape[0], 1))
    mapped = np.hstack([points, ones]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]


def normalised(homography: np.ndarray) -> np.ndarray:
    """Scale a homography so that its bottom-right entry is 1."""
    return homography / homography[2, 2]


def grid(size: Sequence[int], step: float) -> np.ndarray:
    """(N, 2) pixel coordinates of a regular grid over an image of size (w, h)."""
    xs = np.arange(0.0, size[0], step)
    ys = np.arange(0.0, size[1], step)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def overlap_points(homography: np.ndarray, ir_size: Sequence[int], vis_size: Sequence[int],
                   step: float = 4.0) -> np.ndarray:
    """IR pixels (on a grid) that a homography maps inside the visible frame: the overlap of the two cameras."""
    points = grid(ir_size, step)
    mapped = apply(homography, points)
    inside = ((mapped[:, 0] >= 0) & (mapped[:, 0] <= vis_size[0] - 1)
              & (mapped[:, 1] >= 0) & (mapped[:, 1] <= vis_size[1] - 1))
    return points[inside]


def ir_pixel_error(estimate: np.ndarray, truth: np.ndarray, ir_size: Sequence[int], vis_size: Sequence[int],
                   step: float = 4.0) -> tuple[float, float]:
    """
    Mean and max distance, in IR pixels, between where two IR -> visible homographies put the overlap.

    Each IR pixel of the true overlap goes to the visible frame by the estimate and back by the truth;
    how far it lands from where it started is the misregistration as the IR camera sees it.
    """
    points = overlap_points(truth, ir_size, vis_size, step)
    if not len(points):
        return math.inf, math.inf
    back = apply(np.linalg.inv(truth) @ estimate, points)
    distance = np.linalg.norm(back - points, axis=1)
    return float(distance.mean()), float(distance.max())
