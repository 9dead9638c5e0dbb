"""
Refine an IR -> visible homography by maximising the correlation of edge fields over all pairs.

The objective is the enhanced correlation coefficient (ECC, Evangelidis and Psarakis 2008)
between the visible edge fields and the IR edge fields warped into the visible frame, summed over
every pair of the rig: the pairs share one homography, so one solve sees the structure of all of
them. ECC's closed-form step is invariant to the contrast of either field, which is what two
modalities need. The warp is solved in coordinates normalised to about [-1, 1] (a well
conditioned system whatever the image size), coarse to fine, affine on the coarse levels and the
full 8 degrees of freedom on the finer ones.
"""

from dataclasses import dataclass
import math
from typing import Sequence

import cv2
import numpy as np

from fusion_ros.core.calibration.pyramid import PairLevel

# Samples whose start position is within this fraction of the IR width of its border are left out.
_MARGIN = 0.03
# At most this many visible samples per pair and level (a regular stride keeps the finest level cheap).
MAX_SAMPLES = 60000


@dataclass(frozen=True)
class Refinement:
    """Outcome of one refinement: the homography, its correlation, and whether the steps settled."""

    homography: np.ndarray       # IR -> visible, full-resolution pixels
    correlation: float           # ECC correlation over all pairs at the last level, -1..1
    per_pair: tuple[float, ...]  # the same correlation for each pair alone
    converged: bool


def normaliser(width: int, height: int) -> np.ndarray:
    """Map pixel coordinates of a (width, height) image to about [-1, 1] (isotropic, centred)."""
    half = width / 2.0
    return np.array([[1 / half, 0, (0.5 - width / 2.0) / half],
                     [0, 1 / half, (0.5 - height / 2.0) / half],
                     [0, 0, 1.0]])


def rotation_of(homography: np.ndarray) -> float:
    """Rotation angle (radians) of a homography's linear part, as seen at the origin."""
    return math.atan2(homography[1, 0] - homography[0, 1], homography[0, 0] + homography[1, 1])


def rotate_field(values: np.ndarray, angle: float) -> np.ndarray:
    """Rotate doubled-angle vectors (N, 2) for an image rotated by angle: their angle turns by twice it."""
    cos, sin = math.cos(2 * angle), math.sin(2 * angle)
    out = np.empty_like(values)
    out[:, 0] = cos * values[:, 0] - sin * values[:, 1]
    out[:, 1] = sin * values[:, 0] + cos * values[:, 1]
    return out


@dataclass(frozen=True)
class _Samples:
    """Visible sample grid of one pair at one level: pixel and normalised coordinates, template values."""

    norm: np.ndarray      # (N, 3) homogeneous normalised visible coordinates
    template: np.ndarray  # (N, 2) visible field values


def _ir_pixels(level: PairLevel, norm: np.ndarray, vis_to_ir: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp normalised visible samples: (normalised IR coordinates, homogeneous denominators, IR pixels)."""
    h_ir, w_ir = level.ir_field.shape[:2]
    mapped = norm @ vis_to_ir.T
    denominator = mapped[:, 2]
    warped = mapped[:, :2] / denominator[:, None]
    pixel = (np.hstack([warped, np.ones((len(warped), 1))]) @ np.linalg.inv(normaliser(w_ir, h_ir)).T)[:, :2]
    return warped, denominator, pixel


def _samples(level: PairLevel, vis_to_ir: np.ndarray) -> _Samples:
    """
    Choose the visible samples of one pair at one level: a grid, kept where the start warp lands inside the IR frame.

    The set is fixed for the whole level: were it recomputed as the warp moves, the correlation
    could rise by dropping the parts of the overlap that match badly, and the warp would drift to
    shrink the overlap instead of aligning it. A margin keeps samples inside as the warp settles.
    """
    h, w = level.vis_field.shape[:2]
    h_ir, w_ir = level.ir_field.shape[:2]
    stride = max(1, int(math.ceil(math.sqrt(h * w / MAX_SAMPLES))))
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    pixels = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    norm = pixels @ normaliser(w, h).T
    _, denominator, ir = _ir_pixels(level, norm, vis_to_ir)
    margin = 2 + _MARGIN * w_ir
    inside = ((ir[:, 0] >= margin) & (ir[:, 0] <= w_ir - 1 - margin) & (ir[:, 1] >= margin)
              & (ir[:, 1] <= h_ir - 1 - margin) & (denominator > 0))
    return _Samples(norm[inside], level.vis_field[ys.ravel()[inside], xs.ravel()[inside]].astype(np.float64))


def _jacobian(norm: np.ndarray, warped: np.ndarray, denominator: np.ndarray, du: np.ndarray,
              dv: np.ndarray) -> np.ndarray:
    """
    d(sampled field)/d(8 homography entries), per sample and channel: (N*2, 8).

    warped are the normalised IR coordinates (u, v) of each sample, du/dv the field's derivatives
    with respect to them (N, 2).
    """
    x, y = norm[:, 0], norm[:, 1]
    u, v = warped[:, 0], warped[:, 1]
    rows = []
    for channel in range(2):
        a, b = du[:, channel] / denominator, dv[:, channel] / denominator
        rows.append(np.stack([a * x, a * y, a, b * x, b * y, b,
                              -(a * u + b * v) * x, -(a * u + b * v) * y], axis=1))
    return np.concatenate(rows, axis=0)


def _warp_samples(level: PairLevel, samples: _Samples, vis_to_ir: np.ndarray, rotation: float):
    """Sample the IR field and its derivatives at the warped positions: (values, Jacobian), or None."""
    if len(samples.norm) < 64:
        return None
    warped, denominator, pixel = _ir_pixels(level, samples.norm, vis_to_ir)
    # Clipped to a band around the frame (remap refuses coordinates beyond 32767: a warp gone astray),
    # laid out in rows of 1024 (remap also refuses maps taller than 32767).
    h_ir, w_ir = level.ir_field.shape[:2]
    count = len(pixel)
    rows = -(-count // 1024)
    map_x = np.zeros(rows * 1024, np.float32)
    map_y = np.zeros(rows * 1024, np.float32)
    map_x[:count] = np.clip(pixel[:, 0], -w_ir, 2 * w_ir)
    map_y[:count] = np.clip(pixel[:, 1], -h_ir, 2 * h_ir)
    map_x, map_y = map_x.reshape(rows, 1024), map_y.reshape(rows, 1024)

    def sample(image: np.ndarray) -> np.ndarray:
        out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return rotate_field(out.reshape(-1, 2)[:count].astype(np.float64), rotation)

    half = level.ir_field.shape[1] / 2.0   # d(pixel)/d(normalised coordinate)
    values = sample(level.ir_field)
    du, dv = sample(level.ir_dx) * half, sample(level.ir_dy) * half
    return values, _jacobian(samples.norm, warped, denominator, du, dv)


def _level_warp(homography: np.ndarray, level: PairLevel) -> np.ndarray:
    """Normalised visible -> normalised IR coordinates at this level, for an IR -> visible homography."""
    h_v, w_v = level.vis_field.shape[:2]
    h_i, w_i = level.ir_field.shape[:2]
    level_vis_to_ir = level.ir_to_level @ np.linalg.inv(homography) @ np.linalg.inv(level.vis_to_level)
    warp = normaliser(w_i, h_i) @ level_vis_to_ir @ np.linalg.inv(normaliser(w_v, h_v))
    return warp / warp[2, 2]


def _to_homography(warp: np.ndarray, level: PairLevel) -> np.ndarray:
    """Inverse of _level_warp: the IR -> visible full-resolution homography of a normalised warp."""
    h_v, w_v = level.vis_field.shape[:2]
    h_i, w_i = level.ir_field.shape[:2]
    level_vis_to_ir = np.linalg.inv(normaliser(w_i, h_i)) @ warp @ normaliser(w_v, h_v)
    vis_to_ir = np.linalg.inv(level.ir_to_level) @ level_vis_to_ir @ level.vis_to_level
    homography = np.linalg.inv(vis_to_ir)
    return homography / homography[2, 2]


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean(axis=0, keepdims=True)


def correlation(template: np.ndarray, warped: np.ndarray) -> float:
    """Correlation coefficient of two stacks of field values (zero-mean per channel), -1..1."""
    t, w = _centred(template).ravel(), _centred(warped).ravel()
    norm = float(np.linalg.norm(t) * np.linalg.norm(w))
    return float(t @ w / norm) if norm > 0 else 0.0


def _gather(levels: Sequence[PairLevel], samples: Sequence[_Samples], warp: np.ndarray, rotation: float):
    """Template values, warped values and Jacobians of every pair (None where a pair left the frame)."""
    parts = []
    for level, sample in zip(levels, samples):
        result = _warp_samples(level, sample, warp, rotation)   # one rig: every pair has the same sizes
        parts.append(None if result is None else (sample.template, result[0], result[1]))
    return parts


def _overall(parts) -> float:
    kept = [p for p in parts if p is not None]
    if not kept:
        return -1.0
    return correlation(np.concatenate([p[0] for p in kept]), np.concatenate([p[1] for p in kept]))


def _ecc_step(parts, degrees_of_freedom: int):
    """Return the ECC update of the warp's first degrees_of_freedom entries, or None when no correlation is left."""
    kept = [p for p in parts if p is not None]
    t = np.concatenate([_centred(p[0]).T.ravel() for p in kept])
    w = np.concatenate([_centred(p[1]).T.ravel() for p in kept])
    g = np.concatenate([(p[2] - p[2].mean(axis=0, keepdims=True))[:, :degrees_of_freedom] for p in kept])
    hessian = g.T @ g + 1e-9 * np.eye(degrees_of_freedom)
    g_t, g_w = g.T @ t, g.T @ w
    solve_w = np.linalg.solve(hessian, g_w)
    numerator = w @ w - g_w @ solve_w
    denominator = t @ w - g_t @ solve_w
    if denominator <= 0:
        return None
    return np.linalg.solve(hessian, g_t * (numerator / denominator) - g_w)


def refine_level(levels: Sequence[PairLevel], homography: np.ndarray, degrees_of_freedom: int,
                 iterations: int = 40, tolerance: float = 1e-4) -> Refinement:
    """
    ECC iterations at one level over all pairs; return the refined IR -> visible homography.

    degrees_of_freedom is 6 (affine) or 8 (full homography). A step is kept only if it raises the
    correlation (else it is halved, up to three times): with two modalities the correlation is weak
    and the plain ECC step can overshoot into a wrong basin. tolerance is the largest step, in
    normalised coordinates, at which the iteration counts as settled.
    """
    warp = _level_warp(homography, levels[0])
    samples = [_samples(level, warp) for level in levels]
    rotation = rotation_of(homography)
    parts = _gather(levels, samples, warp, rotation)
    current = _overall(parts)
    converged = False
    for _ in range(iterations):
        if all(p is None for p in parts):
            break
        step = _ecc_step(parts, degrees_of_freedom)
        if step is None:
            break   # no positive correlation left to follow: the warp has lost the structure
        for _halving in range(4):
            delta = np.zeros(9)
            delta[:degrees_of_freedom] = step
            trial = warp + delta.reshape(3, 3)
            trial_parts = _gather(levels, samples, trial, rotation)
            value = _overall(trial_parts)
            if value > current:
                break
            step = step / 2
        else:
            converged = True   # no step along the ECC direction improves: a maximum at this level
            break
        warp, parts, current = trial, trial_parts, value
        if np.abs(step).max() < tolerance:
            converged = True
            break
    per_pair = tuple(correlation(p[0], p[1]) if p is not None else -1.0 for p in parts)
    return Refinement(_to_homography(warp, levels[0]), current, per_pair, converged)
