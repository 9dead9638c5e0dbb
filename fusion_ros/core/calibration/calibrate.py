"""
Estimate a rig's IR -> visible homography from one or more frame pairs, or refuse with a reason.

Order of work: keep the pairs that have structure in both frames, search scale x rotation x shift
at a coarse resolution over all pairs at once, refine the best few starts coarse to fine (affine,
then the full homography) on the joint objective, and then try to prove the answer wrong:
another start that ends elsewhere about as well (ambiguous), pairs that each prefer a different
map (disagreeing frames), a weak correlation, a map outside the searched range. Any of these
refuses: a confident wrong homography is worse than none.
"""

from dataclasses import dataclass, field
import math
from typing import Optional, Sequence

import cv2
import numpy as np

from fusion_ros.core.calibration.geometry import ir_pixel_error
from fusion_ros.core.calibration.orientation import orientation_field, structure_fraction, to_gray_float
from fusion_ros.core.calibration.pyramid import build_level, level_factors, resized
from fusion_ros.core.calibration.refine import Refinement, refine_level
from fusion_ros.core.calibration.search import default_range, search, SearchRange


# At most this many pairs take part in the coarse search (the refinement uses all of them).
SEARCH_PAIRS = 4


@dataclass(frozen=True)
class Thresholds:
    """When to refuse (each value was set on simulated rigs of a tuning seed; see benchmarks/registration.py)."""

    min_structure: float = 0.02      # fraction of edge pixels a frame needs (at the search resolution)
    # On single simulated pairs (tuning seed 99), right answers scored 0.44-0.68, wrong ones 0.11-0.42, and
    # every wrong one had a start ending elsewhere at 0.74-0.92 of its score; right ones at most 0.35.
    min_score: float = 0.3           # joint correlation of the edge fields below which the answer is refused
    ambiguity: float = 0.7           # a start ending > agree_px away with this fraction of the best score refuses
    agree_px: float = 2.0            # IR pixels within which two answers count as the same
    # A pair's own map may differ from the joint one (parallax of near objects, a registration error of the
    # data): refuse only when more than this fraction of 3+ pairs prefer a map more than pair_px away.
    pair_px: float = 4.0
    disagree_fraction: float = 0.25
    same_camera: float = 0.95        # |intensity correlation| above which both inputs are one modality


@dataclass(frozen=True)
class PairDiagnostics:
    """What one pair contributed: its structure, its correlation at the answer, its own map and how far that lies."""

    index: int
    ir_structure: float
    vis_structure: float
    used: bool
    correlation: float = math.nan
    own_correlation: float = math.nan  # the pair's correlation at its own refinement (3+ pairs)
    deviation_px: float = math.nan    # IR pixels between its own refinement and the joint answer, if it prefers it


@dataclass(frozen=True)
class Calibration:
    """The answer (homography None when refused), its score, per-pair diagnostics and the refusal reason."""

    homography: Optional[np.ndarray]
    score: float
    pairs: tuple[PairDiagnostics, ...]
    refusal: Optional[str] = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Tell whether a homography was found and trusted."""
        return self.homography is not None


def _sizes(frames: Sequence[np.ndarray], what: str) -> tuple[int, int]:
    sizes = {frame.shape[:2] for frame in frames}
    if len(sizes) != 1:
        raise ValueError(f'{what} frames of one rig must all have one size, got {sorted(sizes)} (height, width)')
    height, width = sizes.pop()
    return width, height


def _looks_colour(frame: np.ndarray) -> bool:
    """Tell a 3-channel frame whose channels differ (a thermal camera gives one channel, or three equal ones)."""
    if frame.ndim != 3 or frame.shape[2] < 3:
        return False
    small = frame[::4, ::4, :3].astype(np.int16)
    return float(np.mean(np.abs(small[..., 0] - small[..., 1]) + np.abs(small[..., 1] - small[..., 2]))) > 6.0


def _refine_start(levels_per_factor, start: np.ndarray) -> Refinement:
    """
    Refine one start coarse to fine: affine on the coarsest level, the full homography on the finer ones.

    With fewer than 3 pairs the refinement stays affine: one cross-modal pair pins the perspective
    terms poorly. On the 8 real cross-resolution RoadScene pairs (benchmarks/registration.py) the
    full homography from one pair erred more (median 2.2 against 1.8 IR px).
    """
    homography, result = start, None
    for k, levels in enumerate(levels_per_factor):
        full = len(levels) >= 3 and (k > 0 or len(levels_per_factor) == 1)
        result = refine_level(levels, homography, 8 if full else 6)
        homography = result.homography
    return result


def _pyramid(pairs, homography: np.ndarray, vis_width: int):
    scale = math.sqrt(abs(np.linalg.det(homography[:2, :2])))
    return [[build_level(ir, vis, fv, fi) for ir, vis in pairs] for fv, fi in level_factors(scale, vis_width)]


def calibrate(ir_frames: Sequence[np.ndarray], vis_frames: Sequence[np.ndarray],
              search_range: Optional[SearchRange] = None, thresholds: Thresholds = Thresholds(),
              starts: int = 3) -> Calibration:
    """
    Estimate the IR -> visible homography (full-resolution pixels) of a rigid rig from frame pairs.

    Frames may be uint8 or uint16, gray or BGR. Raises ValueError for unusable input (no pairs,
    sizes that differ within one camera); returns a Calibration whose refusal names the reason
    when the data cannot support an answer.
    """
    if len(ir_frames) != len(vis_frames) or not ir_frames:
        raise ValueError(f'need one or more IR/visible pairs, got {len(ir_frames)} IR and {len(vis_frames)} visible')
    ir_size, vis_size = _sizes(ir_frames, 'IR'), _sizes(vis_frames, 'visible')
    search_range = search_range or default_range(ir_size, vis_size)
    if sum(_looks_colour(frame) for frame in ir_frames) > len(ir_frames) / 2:
        return Calibration(None, math.nan, (), 'the IR frames are in colour: these look like visible images '
                           '(is the visible folder or topic given twice?)')
    grays = [(to_gray_float(ir), to_gray_float(vis)) for ir, vis in zip(ir_frames, vis_frames)]
    diagnostics, kept = _structure(grays, search_range, vis_size, thresholds)
    if not kept:
        return Calibration(None, math.nan, tuple(diagnostics), 'too little structure: no pair has enough edges in '
                           f'both frames (need {thresholds.min_structure:.0%} edge pixels in each)')
    pairs = [grays[i] for i in kept]
    # The search only has to find the basin: the pairs with the most structure in their poorer frame suffice.
    richest = sorted(kept, key=lambda i: -min(diagnostics[i].ir_structure, diagnostics[i].vis_structure))
    candidates = search([grays[i] for i in richest[:SEARCH_PAIRS]], search_range, keep=starts)
    if not candidates:
        return Calibration(None, math.nan, tuple(diagnostics), 'no placement of the IR frame in the searched range '
                           f'(scale {search_range.scale_min:.3f}-{search_range.scale_max:.3f}) overlaps the visible '
                           'frame enough')
    results = [_refine_start(_pyramid(pairs, c.homography, vis_size[0]), c.homography) for c in candidates]
    results.sort(key=lambda r: -r.correlation)
    best = results[0]
    diagnostics = _per_pair(diagnostics, kept, best, pairs, vis_size, ir_size, thresholds.min_score)
    refusal = (_verdict(best, results, diagnostics, search_range, ir_size, vis_size, thresholds)
               or _same_camera(pairs, best.homography, thresholds))
    notes = tuple(f'start {k}: correlation {r.correlation:.3f}, '
                  f'{ir_pixel_error(r.homography, best.homography, ir_size, vis_size)[0]:.1f} IR px from the answer'
                  f'{"" if r.converged else " (iteration limit reached)"}' for k, r in enumerate(results))
    return Calibration(None if refusal else best.homography, best.correlation, tuple(diagnostics), refusal, notes)


def _structure(grays, search_range: SearchRange, vis_size, thresholds: Thresholds):
    """Edge fraction of each frame at a common coarse scene resolution; the indices of pairs with enough in both."""
    factor = 160.0 / vis_size[0]
    ir_factor = factor * math.sqrt(search_range.scale_min * search_range.scale_max)
    diagnostics, kept = [], []
    for index, (ir, vis) in enumerate(grays):
        ir_s = structure_fraction(orientation_field(resized(ir, ir_factor)[0]))
        vis_s = structure_fraction(orientation_field(resized(vis, factor)[0]))
        used = min(ir_s, vis_s) >= thresholds.min_structure
        diagnostics.append(PairDiagnostics(index, ir_s, vis_s, used))
        if used:
            kept.append(index)
    return diagnostics, kept


def _per_pair(diagnostics, kept, best: Refinement, pairs, vis_size, ir_size,
              min_correlation: float) -> list[PairDiagnostics]:
    """
    Each used pair's correlation at the answer and, for 3+ pairs, how far its own refinement moves.

    Each pair is refined alone, coarse to fine from the joint answer. Only a pair whose own map
    correlates (min_correlation) and scores higher than the joint answer does for it prefers a map
    and votes on agreement; for any other the deviation is NaN. A night scene or a blank sky has no
    map of its own; and one pair alone on the coarse levels often wanders off (on simulated
    RoadScene rigs of tuning seed 7, 10-80 IR px) to a map that scores lower than where it started:
    that is the refinement losing its way, not the pair disagreeing.
    """
    out = list(diagnostics)
    levels = _pyramid(pairs, best.homography, vis_size[0]) if len(kept) >= 3 else None
    for slot, index in enumerate(kept):
        deviation, own_correlation = math.nan, math.nan
        at_joint = best.per_pair[slot]
        if levels is not None:
            own = _refine_start([[level[slot]] for level in levels], best.homography)
            own_correlation = own.correlation
            if own_correlation >= min_correlation and own_correlation > at_joint:
                deviation = ir_pixel_error(own.homography, best.homography, ir_size, vis_size)[0]
        old = out[index]
        out[index] = PairDiagnostics(index, old.ir_structure, old.vis_structure, True, at_joint, own_correlation,
                                     deviation)
    return out


def _same_camera(pairs, homography: np.ndarray, thresholds: Thresholds) -> Optional[str]:
    """
    Refuse when the registered IR intensities copy the visible ones: one modality given twice.

    Thermal and visible intensities of one scene are related only loosely (a warm person is bright
    in IR whatever their clothes); a near-perfect linear relation means the same camera's images.
    """
    correlations = []
    for ir, vis in pairs:
        factor = min(1.0, 320.0 / vis.shape[1])
        vis_small, to_small = resized(vis, factor)
        size = (vis_small.shape[1], vis_small.shape[0])
        warp = to_small @ homography
        warped = cv2.warpPerspective(ir, warp, size, flags=cv2.INTER_LINEAR)
        inside = cv2.warpPerspective(np.ones(ir.shape, np.uint8), warp, size, flags=cv2.INTER_NEAREST) > 0
        if inside.sum() > 100:
            correlations.append(abs(float(np.corrcoef(warped[inside], vis_small[inside])[0, 1])))
    if correlations and np.median(correlations) > thresholds.same_camera:
        return (f'the IR and visible frames look like one camera (intensity correlation {np.median(correlations):.3f} '
                'after alignment): are the visible images given as IR too?')
    return None


def _verdict(best: Refinement, results, diagnostics, search_range: SearchRange, ir_size, vis_size,
             thresholds: Thresholds) -> Optional[str]:
    """Return the reason to refuse the best refinement, or None to accept it."""
    homography = best.homography
    if not np.all(np.isfinite(homography)) or abs(np.linalg.det(homography)) < 1e-12:
        return 'the alignment diverged (no finite, invertible homography)'
    if best.correlation < thresholds.min_score:
        return (f'poor score: the edges of the two cameras correlate {best.correlation:.3f} at the best map found, '
                f'below {thresholds.min_score} (too little shared structure, or the frames do not show one scene)')
    scale = math.sqrt(abs(np.linalg.det(homography[:2, :2])))
    if not search_range.scale_min * 0.9 <= scale <= search_range.scale_max * 1.1:
        return (f'the map found has scale {scale:.3f} (visible pixels per IR pixel), outside the searched range '
                f'{search_range.scale_min:.3f}-{search_range.scale_max:.3f}')
    for other in results[1:]:
        distance = ir_pixel_error(other.homography, homography, ir_size, vis_size)[0]
        if distance > thresholds.agree_px and other.correlation >= thresholds.ambiguity * best.correlation:
            return (f'ambiguous: two maps {distance:.1f} IR px apart score {best.correlation:.3f} and '
                    f'{other.correlation:.3f}; add pairs with more structure')
    deviations = [d.deviation_px for d in diagnostics if d.used and not math.isnan(d.deviation_px)]
    if len(deviations) >= 3:
        outliers = sum(d > thresholds.pair_px for d in deviations)
        if outliers > thresholds.disagree_fraction * len(deviations):
            return (f'disagreeing frames: {outliers} of {len(deviations)} pairs each prefer a map more than '
                    f'{thresholds.pair_px} IR px away from the joint answer (median {np.median(deviations):.1f} px); '
                    'were the cameras moved while recording, or are the frames from different rigs?')
    return None
