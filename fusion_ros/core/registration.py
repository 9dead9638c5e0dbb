"""
Bring the infrared frame into the visible camera's pixel grid.

The fusion network needs both inputs on one grid. Cameras on a rig differ in
resolution and viewpoint, so the IR frame is either taken as already aligned
('none'), stretched to the visible size ('resize', for boresighted cameras
with the same field of view) or warped by a calibrated homography
('homography', mapping IR pixel coordinates to visible pixel coordinates).
Configuration errors are raised when the Registration is built, so a bad
parameter fails at node start-up rather than on the first frame.
"""

from dataclasses import dataclass
import math
from typing import Any, Optional, Sequence

import cv2
import numpy as np

REGISTRATION_MODES = ('none', 'resize', 'homography')

# |det| below this fraction of (largest entry)^3 counts as singular: det scales with the cube of the entries.
_SINGULAR_RTOL = 1e-12


@dataclass(frozen=True)
class Registration:
    """
    How the IR frame maps onto the visible frame; validated on construction.

    ``homography`` is the row-major 3x3 matrix (9 floats) taking IR pixel
    coordinates to visible pixel coordinates; it is used by mode 'homography'
    only and must be None (or empty) for the other modes.
    """

    mode: str = 'resize'
    homography: Optional[tuple[float, ...]] = None

    def __post_init__(self) -> None:
        """Normalise the homography to a tuple of 9 floats (or None) and validate."""
        homography = self.homography
        if homography is not None and np.size(np.asarray(homography, dtype=object)) == 0:
            homography = None  # ROS parameters cannot be None; an empty list means "not given"
        if homography is not None:
            homography = _as_nine_floats(homography)
        object.__setattr__(self, 'homography', homography)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the problem if this registration cannot be applied."""
        if not isinstance(self.mode, str) or self.mode not in REGISTRATION_MODES:
            raise ValueError(f'unknown registration mode {self.mode!r}; valid modes: {", ".join(REGISTRATION_MODES)}')
        if self.mode != 'homography':
            if self.homography is not None:
                raise ValueError(f"a homography was given but registration mode is {self.mode!r}; "
                                 "it is only used with mode 'homography'")
            return
        if self.homography is None:
            raise ValueError("registration mode 'homography' needs a homography: 9 numbers, row-major 3x3")
        homography = self.homography
        if not all(math.isfinite(v) for v in homography):
            raise ValueError(f'homography has non-finite entries: {homography}')
        matrix = np.asarray(homography, dtype=np.float64).reshape(3, 3)
        scale = float(np.abs(matrix).max())
        det = float(np.linalg.det(matrix / scale)) if scale else 0.0   # scaled first: 1e103 ** 3 overflows
        if abs(det) <= _SINGULAR_RTOL:
            raise ValueError(f'homography is singular (determinant {det:.3g} once its largest entry, {scale:.3g}, '
                             f'is scaled to 1): {homography}')

    @property
    def matrix(self) -> Optional[np.ndarray]:
        """Return the homography as a float64 3x3 array, or None outside mode 'homography'."""
        if self.homography is None:
            return None
        return np.asarray(self.homography, dtype=np.float64).reshape(3, 3)


def _as_nine_floats(values: Any) -> tuple[float, ...]:
    """Flatten a 9-element sequence (or 3x3 nested sequence/array) to a tuple of floats."""
    try:
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f'homography must be 9 numbers (row-major 3x3), got {values!r}') from None
    if flat.size != 9:
        raise ValueError(f'homography must be 9 numbers (row-major 3x3), got {flat.size}')
    return tuple(float(v) for v in flat)


def make_registration(mode: str, homography: Optional[Sequence[float]] = None) -> Registration:
    """Build a validated Registration; raise ValueError naming the problem for a bad mode or matrix."""
    return Registration(mode, homography)


def register_ir(ir: np.ndarray, vis_shape: Sequence[int], registration: Registration) -> np.ndarray:
    """
    Return the IR frame resampled onto the visible frame's (H, W) grid.

    ``vis_shape`` is the visible array's shape; only its first two entries
    (height, width) are used, so ``vis.shape`` can be passed directly. Pixels
    that a homography maps from outside the IR frame are 0.
    """
    if ir.ndim != 2:
        raise ValueError(f'infrared image must be single-channel (H, W), got shape {ir.shape}')
    if ir.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'infrared image must be uint8 or uint16, got {ir.dtype}')
    if len(vis_shape) < 2:
        raise ValueError(f'visible shape must start with (height, width), got {tuple(vis_shape)}')
    vis_h, vis_w = int(vis_shape[0]), int(vis_shape[1])
    if vis_h <= 0 or vis_w <= 0:
        raise ValueError(f'visible image has zero size: width={vis_w}, height={vis_h}')
    ir_h, ir_w = ir.shape
    mode = registration.mode
    if mode == 'none':
        if (ir_h, ir_w) != (vis_h, vis_w):
            raise ValueError(f"registration mode 'none' needs equal sizes, but the infrared image is "
                             f'{ir_w}x{ir_h} and the visible image is {vis_w}x{vis_h} (width x height)')
        return ir
    if mode == 'resize':
        if (ir_h, ir_w) == (vis_h, vis_w):
            return ir
        return cv2.resize(ir, (vis_w, vis_h), interpolation=cv2.INTER_LINEAR)
    if mode == 'homography':
        return cv2.warpPerspective(ir, registration.matrix, (vis_w, vis_h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    raise ValueError(f'unknown registration mode {mode!r}; valid modes: {", ".join(REGISTRATION_MODES)}')
