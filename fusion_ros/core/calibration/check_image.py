"""
The check image of a calibration: the visible frame with the registered IR frame's edges drawn on it.

Two panels, before (IR stretched over the visible frame, the node's 'resize') and after (the
calibrated homography), so a user sees at a glance whether the thermal outlines now sit on the
visible ones.
"""

import cv2
import numpy as np

from fusion_ros.core.calibration.orientation import to_gray_float

_EDGE_COLOUR = (0, 0, 255)    # BGR red: the IR edges
_PANEL_WIDTH = 640


def ir_edges(ir: np.ndarray, homography: np.ndarray, vis_shape: tuple[int, ...]) -> np.ndarray:
    """Bool mask, on the visible grid, of the edges of the IR frame warped by an IR -> visible homography."""
    gray = np.clip(to_gray_float(ir) * 255, 0, 255).astype(np.uint8)
    size = (vis_shape[1], vis_shape[0])
    warped = cv2.warpPerspective(cv2.GaussianBlur(gray, (0, 0), 1.0), homography, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.full(gray.shape, 255, np.uint8), homography, size, flags=cv2.INTER_NEAREST)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8))     # the frame's own border is no edge
    scale = float(np.sqrt(abs(np.linalg.det(homography[:2, :2]))))
    warped = cv2.GaussianBlur(warped, (0, 0), max(1.0, 0.5 * scale))
    strength = np.abs(cv2.Sobel(warped, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(warped, cv2.CV_32F, 0, 1))
    high = float(np.percentile(strength, 95))
    edges = cv2.Canny(warped, 0.5 * high, high)
    return (edges > 0) & (inside > 0)


def overlay(visible: np.ndarray, edges: np.ndarray, title: str) -> np.ndarray:
    """Draw the visible frame (dimmed) with edges in red and a title, scaled to the panel width."""
    vis = visible if visible.ndim == 3 else cv2.cvtColor(visible, cv2.COLOR_GRAY2BGR)
    vis = cv2.convertScaleAbs(vis.astype(np.float32) * 0.7)
    vis[cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0] = _EDGE_COLOUR
    scale = _PANEL_WIDTH / vis.shape[1]
    panel = cv2.resize(vis, (_PANEL_WIDTH, int(round(vis.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    cv2.putText(panel, title, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(panel, title, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return panel


def check_image(ir: np.ndarray, visible: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Side-by-side panels: IR edges on the visible frame through the before and the after homography."""
    return np.hstack([overlay(visible, ir_edges(ir, before, visible.shape), 'before: resize'),
                      overlay(visible, ir_edges(ir, after, visible.shape), 'after: calibrated')])
