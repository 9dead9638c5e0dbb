"""
Global search for the IR -> visible map at a coarse resolution: scale x rotation x every shift.

A local method (ECC, Gauss-Newton) only converges from near the answer, and two modalities give
it many wrong places to stop. So each candidate scale and rotation of the IR edge field is
correlated with the visible one at every shift at once (FFT), the sums of all pairs of the rig
are added in the Fourier domain, and the correlation is normalised by the edge energy each side
sees in the overlap (so a shift that pushes the frames apart earns nothing by covering less).
"""

from dataclasses import dataclass
import math
from typing import Sequence

import cv2
import numpy as np

from fusion_ros.core.calibration.geometry import centred_similarity
from fusion_ros.core.calibration.orientation import orientation_field
from fusion_ros.core.calibration.pyramid import resized
from fusion_ros.core.calibration.refine import rotate_field

# Width of the visible frame during the search, in pixels.
SEARCH_WIDTH = 96
# Shifts up to this fraction of the visible width either way are searched.
SHIFT_FRACTION = 0.3
# A shift must keep at least this fraction of the smaller footprint inside the other frame.
MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Candidate:
    """One peak of the search: an IR -> visible similarity and its normalised correlation."""

    homography: np.ndarray
    score: float
    scale: float
    angle_deg: float


@dataclass(frozen=True)
class SearchRange:
    """Scales (IR pixel -> visible pixels) and rotations (degrees) to try."""

    scale_min: float
    scale_max: float
    scale_step: float = 0.03      # relative
    angle_max: float = 6.0
    angle_step: float = 1.5

    def scales(self) -> np.ndarray:
        """Geometric grid from scale_min to scale_max."""
        count = max(1, int(math.ceil(math.log(self.scale_max / self.scale_min) / math.log1p(self.scale_step))) + 1)
        return np.geomspace(self.scale_min, self.scale_max, count)

    def angles(self) -> np.ndarray:
        """Rotations from -angle_max to angle_max."""
        count = int(round(2 * self.angle_max / self.angle_step)) + 1 if self.angle_max > 0 else 1
        return np.linspace(-self.angle_max, self.angle_max, count)


def default_range(ir_size: Sequence[int], vis_size: Sequence[int]) -> SearchRange:
    """
    Scales from half to 1.25x of "the IR frame spans the visible frame", rotations up to 6 degrees.

    At 0.5x the IR frame covers half the visible frame's width (a narrower thermal field of view,
    the usual case), at 1.25x it sees a quarter beyond it; shifts up to 30 % of the width either way.
    """
    spans = (vis_size[0] / ir_size[0], vis_size[1] / ir_size[1])
    return SearchRange(0.5 * min(spans), 1.25 * max(spans))


def _to_complex(field: np.ndarray) -> np.ndarray:
    return (field[..., 0] + 1j * field[..., 1]).astype(np.complex64)


def _real_pair(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the transform of a + ib (a, b real) into the transforms of a and of b."""
    mirrored = np.conj(np.roll(np.flip(spectrum), 1, axis=(0, 1)))
    return (spectrum + mirrored) / 2, (spectrum - mirrored) / 2j


def _canvas(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.complex64)
    out[:values.shape[0], :values.shape[1]] = values
    return out


def search(pairs: Sequence[tuple[np.ndarray, np.ndarray]], search_range: SearchRange,
           keep: int = 4) -> list[Candidate]:
    """
    Best IR -> visible similarities for pairs of gray float images (IR, visible), best first.

    keep distinct peaks are returned (distinct: another scale or rotation cell, or a shift of more
    than two search pixels), so the refinement can try more than one start.
    """
    ir_h, ir_w = pairs[0][0].shape[:2]
    vis_h, vis_w = pairs[0][1].shape[:2]
    factor = SEARCH_WIDTH / vis_w
    margin = int(round(SHIFT_FRACTION * SEARCH_WIDTH))
    scales = search_range.scales()
    ir_factor = factor * math.sqrt(scales[0] * scales[-1])   # one IR resolution for the whole scale range
    vis_spectra, vis_energy = [], 0.0
    for _, vis in pairs:
        vis_small, to_small = resized(vis, factor)
        vis_field = _to_complex(orientation_field(vis_small))
        small_h, small_w = vis_field.shape
        ext_h, ext_w = small_h + 2 * margin, small_w + 2 * margin
        shape = (cv2.getOptimalDFTSize(small_h + ext_h), cv2.getOptimalDFTSize(small_w + ext_w))
        vis_spectra.append(np.fft.fft2(_canvas(vis_field, shape)))
        vis_energy = vis_energy + _canvas(np.abs(vis_field) ** 2, shape)
    vis_energy_spectrum = np.fft.fft2(vis_energy)
    mask_spectrum = np.fft.fft2(_canvas(np.ones((small_h, small_w), np.float32), shape))
    to_ext = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1.0]]) @ to_small
    ir_small = [resized(ir, ir_factor) for ir, _ in pairs]
    ir_map = ir_small[0][1]
    ir_fields = [orientation_field(small) for small, _ in ir_small]
    ir_ones = np.ones(ir_fields[0].shape[:2], np.float32)
    peaks = []
    for angle in search_range.angles():
        # Turning the image turns every doubled-angle vector by twice the angle: done once per angle.
        turned = [rotate_field(f.reshape(-1, 2), math.radians(angle)).reshape(f.shape).astype(np.float32)
                  for f in ir_fields]
        for scale in scales:
            similarity = centred_similarity(scale, angle, (ir_w, ir_h), (vis_w, vis_h))
            to_canvas = (to_ext @ similarity @ np.linalg.inv(ir_map))[:2]
            footprint = cv2.warpAffine(ir_ones, to_canvas, (ext_w, ext_h))
            cross = np.zeros(shape, np.complex64)
            ir_energy = np.zeros((ext_h, ext_w), np.float32)
            for field, vis_spectrum in zip(turned, vis_spectra):
                z = _to_complex(cv2.warpAffine(field, to_canvas, (ext_w, ext_h)))
                cross += vis_spectrum * np.conj(np.fft.fft2(_canvas(z, shape)))
                ir_energy += np.abs(z) ** 2
            # Real maps travel in pairs (real and imaginary parts): fewer transforms.
            energy_spectrum, foot_spectrum = _real_pair(np.fft.fft2(_canvas(ir_energy + 1j * footprint, shape)))
            seen = np.fft.ifft2(vis_energy_spectrum * np.conj(foot_spectrum)
                                + 1j * mask_spectrum * np.conj(foot_spectrum))
            vis_seen, area = np.real(seen), np.imag(seen)
            energy = vis_seen * np.real(np.fft.ifft2(mask_spectrum * np.conj(energy_spectrum)))
            score = np.real(np.fft.ifft2(cross)) / np.sqrt(np.maximum(energy, 1e-9))
            enough = area >= MIN_OVERLAP * min(small_w * small_h, float(footprint.sum()))
            peak = _best_shift(score, enough, margin)
            if peak is not None:
                offset, value = peak
                shift = np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1.0]])
                homography = np.linalg.inv(to_small) @ shift @ to_small @ similarity
                peaks.append(Candidate(homography / homography[2, 2], value, float(scale), float(angle)))
    return _distinct(peaks, keep, factor)


def _best_shift(score: np.ndarray, enough: np.ndarray, margin: int):
    """
    Return the best allowed shift ((dx, dy) in search pixels, score), or None.

    Index d of the correlation lays IR canvas pixel x on visible pixel x + d; canvas pixel x was placed
    at visible x - margin, so the IR moved by d + margin (d wrapped to negative values past the middle).
    """
    height, width = score.shape
    offset_y = np.where(np.arange(height) <= height // 2, np.arange(height), np.arange(height) - height) + margin
    offset_x = np.where(np.arange(width) <= width // 2, np.arange(width), np.arange(width) - width) + margin
    allowed = (np.abs(offset_y)[:, None] <= margin) & (np.abs(offset_x)[None, :] <= margin) & enough
    if not allowed.any():
        return None
    masked = np.where(allowed, score, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(masked)), score.shape)
    return (int(offset_x[ix]), int(offset_y[iy])), float(masked[iy, ix])


def _distinct(peaks: list[Candidate], keep: int, factor: float) -> list[Candidate]:
    """Keep the best peaks, skipping any within two search pixels (at the visible centre) of a better one."""
    chosen: list[Candidate] = []
    for peak in sorted(peaks, key=lambda c: -c.score):
        if all(abs(peak.scale / c.scale - 1) > 0.04 or abs(peak.angle_deg - c.angle_deg) > 2
               or np.abs(peak.homography[:2, 2] - c.homography[:2, 2]).max() * factor > 2 for c in chosen):
            chosen.append(peak)
        if len(chosen) == keep:
            break
    return chosen
