"""
Simulated camera rigs: how a moved, lower-resolution IR camera would see a registered pair.

A registered IR/visible pair (same pixel grid) becomes a rig with a known answer: the IR camera is
given its own, coarser pixel grid that spans part of the visible frame, moved by a random
homography (scale, rotation, shift, mild perspective). The IR frame is rendered through that
map, so the true IR -> visible homography is known exactly and a calibration can be scored in IR
pixels. Every IR pixel stays inside the source frame: a real camera has no black border.
"""

from dataclasses import dataclass
import math
from typing import Optional

import cv2
import numpy as np

from fusion_ros.core.calibration.geometry import apply, centred_similarity


@dataclass(frozen=True)
class RigRanges:
    """The ranges of the random IR camera motion (the issue's documented ranges by default)."""

    scale: tuple[float, float] = (0.9, 1.1)
    rotation_deg: float = 4.0
    shift_px: float = 40.0          # visible pixels, each axis
    perspective: float = 0.03       # |h31|, |h32| in coordinates normalised to [-1, 1] by the visible width
    coverage: float = 0.75          # IR frame width / visible frame width before the motion
    ir_downscale: float = 1.5       # visible pixels per IR pixel before the motion


def random_motion(rng: np.random.Generator, vis_size: tuple[int, int], ranges: RigRanges) -> np.ndarray:
    """Draw a random homography of the visible plane about its centre, within ranges (visible pixels)."""
    width, height = vis_size
    centre = np.array([[1, 0, (width - 1) / 2], [0, 1, (height - 1) / 2], [0, 0, 1.0]])
    half = width / 2.0
    to_norm = np.array([[1 / half, 0, 0], [0, 1 / half, 0], [0, 0, 1.0]])
    scale = rng.uniform(*ranges.scale)
    angle = math.radians(rng.uniform(-ranges.rotation_deg, ranges.rotation_deg))
    linear = np.array([[scale * math.cos(angle), -scale * math.sin(angle), 0],
                       [scale * math.sin(angle), scale * math.cos(angle), 0],
                       [0, 0, 1.0]])
    perspective = np.eye(3)
    perspective[2, :2] = rng.uniform(-ranges.perspective, ranges.perspective, 2)
    shift = np.eye(3)
    shift[:2, 2] = rng.uniform(-ranges.shift_px, ranges.shift_px, 2)
    motion = shift @ centre @ np.linalg.inv(to_norm) @ perspective @ linear @ to_norm @ np.linalg.inv(centre)
    return motion / motion[2, 2]


def ir_camera_size(vis_size: tuple[int, int], ranges: RigRanges) -> tuple[int, int]:
    """Return the simulated IR frame's (width, height): the visible aspect, ranges.coverage wide."""
    width = int(round(vis_size[0] * ranges.coverage / ranges.ir_downscale))
    return width, int(round(width * vis_size[1] / vis_size[0]))


def random_rig(rng: np.random.Generator, vis_size: tuple[int, int], ranges: RigRanges = RigRanges(),
               tries: int = 1000) -> tuple[np.ndarray, tuple[int, int]]:
    """
    Draw a rig: (IR -> visible homography, IR frame size) whose IR frame stays inside the visible one.

    Draws that would see outside the visible frame are drawn again (so the largest shifts are a
    little rarer than the range says).
    """
    ir_size = ir_camera_size(vis_size, ranges)
    nominal = centred_similarity(ranges.coverage * vis_size[0] / ir_size[0], 0.0, ir_size, vis_size)
    corners = np.array([[0, 0], [ir_size[0] - 1, 0], [0, ir_size[1] - 1], [ir_size[0] - 1, ir_size[1] - 1]], float)
    for _ in range(tries):
        homography = random_motion(rng, vis_size, ranges) @ nominal
        mapped = apply(homography, corners)
        if (mapped >= 0).all() and (mapped[:, 0] <= vis_size[0] - 1).all() and (mapped[:, 1] <= vis_size[1] - 1).all():
            return homography / homography[2, 2], ir_size
    raise ValueError(f'no rig within {ranges} keeps the IR frame inside a {vis_size} visible frame')


def render_ir(ir_registered: np.ndarray, homography: np.ndarray, ir_size: tuple[int, int],
              noise: float = 1.0, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """
    Render the IR camera's frame: the registered IR image seen through homography (IR -> visible), uint8.

    The source is blurred first by the IR pixel's footprint (no aliasing a real sensor would not
    have), and Gaussian noise of the given standard deviation (grey levels) is added.
    """
    scale = math.sqrt(abs(np.linalg.det(homography[:2, :2])))
    source = ir_registered.astype(np.float32)
    if scale > 1:
        source = cv2.GaussianBlur(source, (0, 0), 0.5 * math.sqrt(scale * scale - 1))
    frame = cv2.warpPerspective(source, homography, ir_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
    if noise > 0:
        frame = frame + (rng or np.random.default_rng(0)).normal(0, noise, frame.shape).astype(np.float32)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def folded_intensity(visible: np.ndarray) -> np.ndarray:
    """
    Return a gray uint8 "IR" frame with the visible frame's geometry: its gray levels through a folded curve.

    A non-monotonic intensity map flips the sign of some edges and not others, as between thermal
    and visible images, while every edge stays in place: an exact truth for a cross-modal method.
    """
    gray = cv2.cvtColor(visible, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    return np.clip(255 * np.abs(np.sin(2.4 * gray + 0.3)), 0, 255).astype(np.uint8)
