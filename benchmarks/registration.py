"""
How well `fusion-ros calibrate` finds the IR -> visible homography, against feature matching and ECC.

    .venv/bin/python benchmarks/registration.py [--rigs 20] [--pairs 1 8] [--seed 2026]
        [--methods calibrate sift orb ecc] [--out benchmarks/results/registration.json]

Simulated rigs: the shared registered pairs (MSRS, RoadScene) are seen by an IR camera of lower
resolution (0.75 of the visible width, 1.5 visible pixels per IR pixel) moved by a random
homography within the issue's ranges (scale 0.9-1.1, rotation +-4 deg, shift +-40 px, perspective
+-0.03 in normalised coordinates; fusion_ros.evaluation.rig_simulation). A rig is 1 or 8 pairs
of different scenes through one map. The truth is the map the IR frame was rendered with, so it
inherits each shared pair's own registration error (the MSRS pairs are off by up to a few pixels).

Real cross-resolution case: the RoadScene IR frames (about 500x330) against the 8 high-resolution
visible frames of roadscene/vi_hr (about 1400x1000). The truth is the same-modality fit of the
low-resolution visible frame (pixel-aligned with the IR) into vi_hr: SIFT + RANSAC, refined by
ECC on the intensities.

Error: mean distance in IR pixels over the overlap between where the estimate and the truth put
each IR pixel (geometry.ir_pixel_error). A refusal is counted apart from an error. Prints and
saves JSON; a plot of the error distributions goes beside the JSON.

Corrected truth (--truth-correction, also with --merge): both truths assume the shared pairs are
registered exactly. An exhaustive tile-shift search (measured_registration) measures how they
really are, per data set on pairs no rig uses, and per pair for the vi_hr frames; calibrate's
answers are graded against the truths corrected by it too (error_px_corrected), beside the raw ones.
"""

import argparse
import json
import math
from pathlib import Path
import sys
import time
from typing import NamedTuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.registration_baselines import ecc_homography, feature_homography  # noqa: E402
from benchmarks.rig import machine, save_results  # noqa: E402
from fusion_ros.core.calibration.calibrate import calibrate  # noqa: E402
from fusion_ros.core.calibration.geometry import ir_pixel_error  # noqa: E402
from fusion_ros.core.calibration.orientation import orientation_field, to_gray_float  # noqa: E402
from fusion_ros.core.calibration.score import alignment_score, field_correlation  # noqa: E402
from fusion_ros.evaluation.rig_simulation import folded_intensity, random_rig, render_ir, RigRanges  # noqa: E402

DATASETS = REPO.parent / 'shared' / 'datasets'
RIG_SIZE = {'msrs': (640, 480), 'roadscene': (464, 320)}   # RoadScene frames vary: a common centre crop
SUCCESS_PX = {'rig': 2.0, 'real': 3.0}


class Case(NamedTuple):
    """One calibration problem: its frames, the homography it is graded against, and the shared pairs it uses."""

    name: str
    ir_frames: list
    vis_frames: list
    truth: np.ndarray
    sources: list


def load_pair(dataset: str, ir_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a registered shared pair (IR gray, visible BGR), centre-cropped to the dataset's rig size."""
    ir = cv2.imread(str(ir_path), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(DATASETS / dataset / 'vi' / ir_path.name), cv2.IMREAD_COLOR)
    width, height = RIG_SIZE[dataset]
    top, left = (ir.shape[0] - height) // 2, (ir.shape[1] - width) // 2
    return ir[top:top + height, left:left + width], vis[top:top + height, left:left + width]


def usable(dataset: str) -> list[Path]:
    """Shared pairs at least as large as the dataset's rig size."""
    width, height = RIG_SIZE[dataset]
    paths = []
    for path in sorted((DATASETS / dataset / 'ir').iterdir()):
        shape = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape
        if shape[0] >= height and shape[1] >= width:
            paths.append(path)
    return paths


def run_method(method: str, ir_frames, vis_frames):
    """(homography or None, refusal reason or None, seconds) of one method on one rig."""
    start = time.perf_counter()
    reason = None
    if method == 'calibrate':
        result = calibrate(ir_frames, vis_frames)
        homography, reason = result.homography, result.refusal
    elif method in ('sift', 'orb'):
        homography = feature_homography(ir_frames, vis_frames, method)
        reason = None if homography is not None else 'too few matches'
    else:
        homography = ecc_homography(ir_frames, vis_frames)
        reason = None if homography is not None else 'ECC failed'
    return homography, reason, time.perf_counter() - start


def simulated_cases(dataset: str, rigs: int, pairs_per_rig: int, rng: np.random.Generator):
    """Yield a Case per simulated rig of a dataset."""
    paths = usable(dataset)
    for rig in range(rigs):
        truth, ir_size = random_rig(rng, RIG_SIZE[dataset])
        chosen = rng.choice(len(paths), pairs_per_rig, replace=False)
        ir_frames, vis_frames = [], []
        for index in chosen:
            ir, vis = load_pair(dataset, paths[index])
            ir_frames.append(render_ir(ir, truth, ir_size, rng=rng))
            vis_frames.append(vis)
        yield Case(f'{dataset}/rig{rig:02d}', ir_frames, vis_frames, truth, [paths[i].stem for i in chosen])


def export_rig(folder: Path, dataset: str, pairs: int, rng: np.random.Generator) -> None:
    """Write one simulated rig as folders for `fusion-ros calibrate`, with its true homography."""
    name, ir_frames, vis_frames, truth, _ = next(simulated_cases(dataset, 1, pairs, rng))
    for sub in ('ir', 'vi'):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for k, (ir, vis) in enumerate(zip(ir_frames, vis_frames)):
        cv2.imwrite(str(folder / 'ir' / f'{k:02d}.png'), ir)
        cv2.imwrite(str(folder / 'vi' / f'{k:02d}.png'), vis)
    np.savetxt(folder / 'truth.txt', truth)
    print(f'wrote {name}: {len(ir_frames)} pairs, IR {ir_frames[0].shape[1]}x{ir_frames[0].shape[0]}, '
          f'visible {vis_frames[0].shape[1]}x{vis_frames[0].shape[0]}, truth in {folder / "truth.txt"}')


def real_truth(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Same-modality map low-resolution visible -> high-resolution visible: SIFT + RANSAC, then ECC on intensities."""
    sift = cv2.SIFT_create(8000)
    low_gray, high_gray = cv2.cvtColor(low, cv2.COLOR_BGR2GRAY), cv2.cvtColor(high, cv2.COLOR_BGR2GRAY)
    kp_low, des_low = sift.detectAndCompute(low_gray, None)
    kp_high, des_high = sift.detectAndCompute(high_gray, None)
    matches = [m for m, n in cv2.BFMatcher().knnMatch(des_low, des_high, k=2) if m.distance < 0.75 * n.distance]
    src = np.float32([kp_low[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_high[m.trainIdx].pt for m in matches])
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
    # ECC in the high-resolution frame's pixels: template = vi_hr, moving = low warped by the estimate.
    warp = np.eye(3, dtype=np.float32)
    moving = cv2.warpPerspective(low_gray, homography, (high.shape[1], high.shape[0])).astype(np.float32)
    mask = cv2.warpPerspective(np.full(low_gray.shape, 255, np.uint8), homography, (high.shape[1], high.shape[0]))
    mask = cv2.erode(mask, np.ones((15, 15), np.uint8))
    _, warp = cv2.findTransformECC(cv2.GaussianBlur(high_gray.astype(np.float32), (0, 0), 1.5),
                                   cv2.GaussianBlur(moving, (0, 0), 1.5), warp, cv2.MOTION_HOMOGRAPHY,
                                   (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6), mask, 5)
    # warp maps vi_hr pixels to 'moving' pixels; moving = low through homography.
    refined = np.linalg.inv(warp) @ homography
    return refined / refined[2, 2]


def real_cases():
    """Yield a Case ([IR], [vi_hr]) per RoadScene cross-resolution frame."""
    for path in sorted((DATASETS / 'roadscene' / 'vi_hr').iterdir()):
        ir = cv2.imread(str(DATASETS / 'roadscene' / 'ir' / path.name), cv2.IMREAD_GRAYSCALE)
        low = cv2.imread(str(DATASETS / 'roadscene' / 'vi' / path.name), cv2.IMREAD_COLOR)
        high = cv2.imread(str(path), cv2.IMREAD_COLOR)
        yield Case(f'vi_hr/{path.stem}', [ir], [high], real_truth(low, high), [path.stem])


def exact_real_cases(perspective: float, rng: np.random.Generator):
    """
    Yield a Case per vi_hr frame whose "IR" is its folded-intensity copy, rendered 500 px wide through a random rig.

    The real case's resolutions (IR about 500 px wide against a visible frame of about 1400) with
    an exact truth: whatever error is left is the method's, not a data set's registration.
    perspective is the rig's largest |h31|, |h32| (the simulated rigs use 0.03; the real vi_hr
    frames have none, vi_hr being a scaled copy of the registered frame).
    """
    for path in sorted((DATASETS / 'roadscene' / 'vi_hr').iterdir()):
        vis = cv2.imread(str(path), cv2.IMREAD_COLOR)
        size = (vis.shape[1], vis.shape[0])
        truth, ir_size = random_rig(rng, size, RigRanges(coverage=0.9, ir_downscale=0.9 * size[0] / 500,
                                                         perspective=perspective))
        yield Case(f'vi_hr exact/{path.stem}', [render_ir(folded_intensity(vis), truth, ir_size, rng=rng)], [vis],
                   truth, [path.stem])


def self_registration(dataset: str, groups: int, rng: np.random.Generator) -> list[dict]:
    """
    Calibrate disjoint groups of 8 registered pairs of a dataset as they are (no simulated motion).

    The truth of every simulated rig is the shared pairs' own registration. If independent groups
    of scenes all pull the same way from identity, that registration is off, and no estimate can
    get closer to the simulated truth than this offset.
    """
    paths = usable(dataset)
    order = rng.permutation(len(paths))
    rows = []
    for group in range(groups):
        frames = [load_pair(dataset, paths[i]) for i in order[group * 8:(group + 1) * 8]]
        result = calibrate([ir for ir, _ in frames], [vis for _, vis in frames])
        size = RIG_SIZE[dataset]
        row = {'group': group, 'refusal': result.refusal}
        if result.ok:
            h = result.homography
            centre = np.array([size[0] / 2, size[1] / 2, 1.0])
            moved = h @ centre
            row.update({'mean_px_from_identity': round(ir_pixel_error(h, np.eye(3), size, size)[0], 2),
                        'scale_x': round(float(h[0, 0]), 4), 'scale_y': round(float(h[1, 1]), 4),
                        'shift_at_centre_px': [round(float(v), 2) for v in moved[:2] / moved[2] - centre[:2]]})
        print(dataset, row, flush=True)
        rows.append(row)
    return rows


def best_shift(ir_field: np.ndarray, vis_field: np.ndarray, box: tuple[int, int, int, int],
               reach: int) -> tuple[float, float, float]:
    """
    Shift (dx, dy) that lays the IR edges of box (x0, y0, x1, y1) best on the visible ones, and its correlation.

    Every integer shift within reach pixels is tried (no optimiser that could stop in a wrong
    place); a parabola through the peak and its neighbours along each axis gives the fraction.
    IR content at (x, y) is visible content at (x + dx, y + dy). A peak on the edge of the search
    is no peak: the shift is NaN.
    """
    x0, y0, x1, y1 = box
    ir_part = ir_field[y0:y1, x0:x1]
    shifts = range(-reach, reach + 1)
    scores = np.array([[field_correlation(ir_part, vis_field[y0 + dy:y1 + dy, x0 + dx:x1 + dx]) for dx in shifts]
                       for dy in shifts])
    iy, ix = np.unravel_index(int(np.argmax(scores)), scores.shape)
    if not (0 < iy < 2 * reach and 0 < ix < 2 * reach):
        return math.nan, math.nan, float(scores[iy, ix])
    return (ix - reach + _vertex(scores[iy, ix - 1:ix + 2]), iy - reach + _vertex(scores[iy - 1:iy + 2, ix]),
            float(scores[iy, ix]))


def _vertex(three: np.ndarray) -> float:
    """Offset of the top of the parabola through three equally spaced values (the middle one the largest)."""
    curvature = three[0] - 2 * three[1] + three[2]
    return float(0.5 * (three[0] - three[2]) / curvature) if curvature < 0 else 0.0


def _fields(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return orientation_field(to_gray_float(ir)), orientation_field(to_gray_float(vis))


def strip_offsets(dataset: str, count: int, reach: int = 8) -> dict:
    """
    Check a dataset's own registration locally: the best shift of the IR edges in a left and a right strip.

    Each registered pair's IR and visible edge fields (full resolution) are compared in the left
    and the right third of the frame at every shift within reach pixels (best_shift); no model.
    Equal shifts on both sides mean a translation; a left shift above the right one, pair after
    pair, means the IR image is narrower than the visible one: a scale error of the dataset.
    """
    rows = []
    width, height = RIG_SIZE[dataset]
    for path in usable(dataset)[::max(1, len(usable(dataset)) // count)][:count]:
        ir_field, vis_field = _fields(*load_pair(dataset, path))
        best = [best_shift(ir_field, vis_field, (x0, reach, x1, height - reach), reach)[:2]
                for x0, x1 in ((reach, width // 3), (2 * width // 3, width - reach))]
        rows.append({'pair': path.stem, 'left_shift': [round(v, 2) for v in best[0]],
                     'right_shift': [round(v, 2) for v in best[1]]})
    spread = np.array([r['left_shift'][0] - r['right_shift'][0] for r in rows], float)
    spread = spread[np.isfinite(spread)]
    return {'pairs': rows, 'left_minus_right_x_px_median': float(np.median(spread)),
            'share_left_above_right': round(float(np.mean(spread > 0)), 3),
            'share_left_below_right': round(float(np.mean(spread < 0)), 3)}


def measured_registration(pairs: list, grid: tuple[int, int] = (4, 3), reach: int = 8,
                          min_peak: float = 0.2) -> dict:
    """
    Measure how registered pairs (IR gray, visible BGR; one size) are really registered: one affine map.

    Each pair is cut into grid tiles; each tile's best shift (best_shift: exhaustive, no optimiser,
    none of calibrate's code but the edge field) moves its centre; one affine map (IR pixel ->
    visible pixel) is fitted to all the moved centres by least squares, refitted once without the
    tiles more than 3 times the median residual (at least 2 px) off it: parallax of near objects,
    repeated texture, and (pooling the pairs of a data set) pairs registered unlike the rest. Tiles
    whose peak correlation is below min_peak have too little shared structure to say anything.
    """
    height, width = pairs[0][0].shape[:2]
    tile_w, tile_h = (width - 2 * reach) // grid[0], (height - 2 * reach) // grid[1]
    points, moved = [], []
    for ir, vis in pairs:
        ir_field, vis_field = _fields(ir, vis)
        for ty in range(grid[1]):
            for tx in range(grid[0]):
                x0, y0 = reach + tx * tile_w, reach + ty * tile_h
                dx, dy, peak = best_shift(ir_field, vis_field, (x0, y0, x0 + tile_w, y0 + tile_h), reach)
                if peak >= min_peak and np.isfinite(dx) and np.isfinite(dy):
                    centre = (x0 + (tile_w - 1) / 2, y0 + (tile_h - 1) / 2)
                    points.append(centre)
                    moved.append((centre[0] + dx, centre[1] + dy))
    points, moved = np.array(points), np.array(moved)
    keep = np.ones(len(points), bool)
    for _ in range(2):
        affine = np.linalg.lstsq(np.hstack([points[keep], np.ones((keep.sum(), 1))]), moved[keep], rcond=None)[0]
        residual = np.linalg.norm(np.hstack([points, np.ones((len(points), 1))]) @ affine - moved, axis=1)
        keep = residual <= max(2.0, 3 * float(np.median(residual)))
    matrix = np.vstack([affine.T, [0, 0, 1]])
    centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    return {'matrix': [round(float(v), 6) for v in matrix.ravel()], 'pairs': len(pairs),
            'tiles_used': int(keep.sum()), 'tiles_measured': len(points),
            'median_residual_px': round(float(np.median(residual[keep])), 3),
            'scale_x': round(float(matrix[0, 0]), 4), 'scale_y': round(float(matrix[1, 1]), 4),
            'shift_at_centre_px': [round(float(v), 2) for v in (matrix @ centre - centre)[:2]],
            'mean_px_from_identity': round(ir_pixel_error(matrix, np.eye(3), (width, height), (width, height))[0], 3)}


def correct_truths(rigs: dict, count: int) -> dict:
    """
    Grade every case also against its truth corrected for the shared pairs' own misregistration.

    The simulated rigs render each shared IR image as if it lay exactly on its visible partner; when
    the data set's registration is off, the true IR -> visible map of a rig is that misregistration
    after the applied homography. It is measured (measured_registration) per data set on count of
    its pairs that no rig of rigs uses. The truth of a real vi_hr case assumes its RoadScene IR frame
    lies exactly on the low-resolution visible frame; RoadScene pairs are registered one by one, so
    that pair's own misregistration is measured on the pair itself (an estimate, not a truth: the
    tile search shares the edge field with calibrate). Each row gains error_px_corrected; the raw
    error_px stays.
    """
    corrections = {}
    for dataset in RIG_SIZE:
        settings = [s for s in rigs if s.startswith(f'{dataset} x')]
        if not settings:
            continue
        rows = [row for s in settings for method in rigs[s].values() for row in method['cases']]
        used = {stem for row in rows for stem in row['pairs']}
        held_out = [path for path in usable(dataset) if path.stem not in used]
        chosen = held_out[::max(1, len(held_out) // count)][:count]
        correction = measured_registration([load_pair(dataset, path) for path in chosen])
        correction['held_out_pairs'] = [path.stem for path in chosen]
        matrix = np.array(correction['matrix']).reshape(3, 3)
        for row in rows:
            _regrade(row, matrix @ np.array(row['truth']).reshape(3, 3))
        corrections[dataset] = correction
        print(dataset, 'truth correction', correction, flush=True)
    real = rigs.get('real vi_hr x1', {})
    for stem in sorted({row['pairs'][0] for method in real.values() for row in method['cases']}):
        ir = cv2.imread(str(DATASETS / 'roadscene' / 'ir' / f'{stem}.jpg'), cv2.IMREAD_GRAYSCALE)
        low = cv2.imread(str(DATASETS / 'roadscene' / 'vi' / f'{stem}.jpg'), cv2.IMREAD_COLOR)
        correction = measured_registration([(ir, low)])
        matrix = np.array(correction['matrix']).reshape(3, 3)
        for row in (row for method in real.values() for row in method['cases'] if row['pairs'] == [stem]):
            _regrade(row, np.array(row['truth']).reshape(3, 3) @ matrix)   # IR -> low-resolution -> vi_hr
        corrections[f'vi_hr/{stem}'] = correction
        print(stem, 'truth correction', correction, flush=True)
    return corrections


def _corrected(rows: list[dict]) -> bool:
    return any('error_px_corrected' in row for row in rows)


def _regrade(row: dict, truth: np.ndarray) -> None:
    """Set row['error_px_corrected']: the row's answer against another truth (None when it refused)."""
    answer = row['homography']
    row['error_px_corrected'] = (None if answer is None else
                                 round(ir_pixel_error(np.array(answer).reshape(3, 3), truth, *row['sizes'])[0], 3))


def real_consistency() -> list[dict]:
    """
    Compare per vi_hr frame the map calibrated against vi_hr with the one against the low-resolution frame.

    The low-resolution visible frame is the data set's registered partner of the IR frame, so the
    truth of the cross-resolution case assumes that registration is exact. Calibrating the IR frame
    against both visible frames and bringing the vi_hr answer back through the same-modality map
    shows whether the method agrees with itself across resolutions: if it does while both differ
    from the truth, the difference is the data set's registration, not the method.
    """
    rows = []
    for name, ir_frames, vis_frames, truth, _ in real_cases():
        low = cv2.imread(str(DATASETS / 'roadscene' / 'vi' / (name.split('/')[1] + '.jpg')), cv2.IMREAD_COLOR)
        high_result = calibrate(ir_frames, vis_frames)
        low_result = calibrate(ir_frames, [low])
        ir_size = (ir_frames[0].shape[1], ir_frames[0].shape[0])
        row = {'case': name, 'high_refusal': high_result.refusal, 'low_refusal': low_result.refusal}
        if high_result.ok and low_result.ok:
            back = np.linalg.inv(truth) @ high_result.homography   # truth: low-resolution grid (= IR grid) -> vi_hr
            row['high_vs_low_px'] = round(ir_pixel_error(back, low_result.homography, ir_size, ir_size)[0], 3)
            row['low_vs_dataset_px'] = round(ir_pixel_error(low_result.homography, np.eye(3), ir_size, ir_size)[0], 3)
        print(row, flush=True)
        rows.append(row)
    return rows


def timing(repeats: int = 2) -> dict:
    """Time one calibration (best of repeats) of a real pair and of an 8-pair rig, and the node's per-frame score."""
    _, ir_frames, vis_frames, _, _ = next(real_cases())
    _, rig_ir, rig_vis, _, _ = next(simulated_cases('roadscene', 1, 8, np.random.default_rng(18)))
    out = {}
    for label, (irs, viss) in {'1 pair, IR 500x329 vs visible 1404x1026': (ir_frames, vis_frames),
                               '8 pairs, IR 232x160 vs visible 464x320': (rig_ir, rig_vis)}.items():
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            calibrate(irs, viss)
            seconds.append(time.perf_counter() - start)
        out[label] = round(min(seconds), 2)
        print(label, out[label], 's', flush=True)
    ir, vis = load_pair('msrs', usable('msrs')[0])
    seconds = []
    for _ in range(30):
        start = time.perf_counter()
        alignment_score(ir, vis)
        seconds.append(time.perf_counter() - start)
    out['node alignment score, 640x480, median ms'] = round(1000 * float(np.median(seconds)), 1)
    print('node alignment score 640x480', out['node alignment score, 640x480, median ms'], 'ms', flush=True)
    return out


def summarise(rows: list[dict], success_px: float, key: str = 'error_px') -> dict:
    """Median error (rows[key]), share within success_px of all cases, refusals, wrong answers, time."""
    errors = np.array([r[key] for r in rows if r[key] is not None])
    answered = len(errors)
    return {
        'cases': len(rows), 'answered': answered, 'refused': len(rows) - answered,
        'median_error_px_answered': round(float(np.median(errors)), 3) if answered else None,
        'within_px_of_all': round(float(np.sum(errors <= success_px)) / len(rows), 3) if rows else None,
        'within_px_of_answered': round(float(np.mean(errors <= success_px)), 3) if answered else None,
        'wrong_answers': int(np.sum(errors > success_px)), 'success_px': success_px,
        'seconds_per_pair_median': round(float(np.median([r['seconds_per_pair'] for r in rows])), 3),
    }


def evaluate(cases, methods, kind: str) -> dict:
    """Run every method on every case; per-case rows and summaries."""
    rows = {m: [] for m in methods}
    for name, ir_frames, vis_frames, truth, sources in cases:
        ir_size = (ir_frames[0].shape[1], ir_frames[0].shape[0])
        vis_size = (vis_frames[0].shape[1], vis_frames[0].shape[0])
        resize = np.diag([vis_size[0] / ir_size[0], vis_size[1] / ir_size[1], 1.0])
        line = [name, f'resize {ir_pixel_error(resize, truth, ir_size, vis_size)[0]:.1f}']
        for method in methods:
            homography, reason, seconds = run_method(method, ir_frames, vis_frames)
            error = None if homography is None else ir_pixel_error(homography, truth, ir_size, vis_size)
            rows[method].append({'case': name, 'error_px': None if error is None else round(error[0], 3),
                                 'max_error_px': None if error is None else round(error[1], 3),
                                 'refusal': reason, 'seconds_per_pair': round(seconds / len(ir_frames), 3),
                                 'pairs': sources, 'sizes': [ir_size, vis_size], 'truth': _entries(truth),
                                 'homography': None if homography is None else _entries(homography)})
            line.append(f'{method} ' + (f'{error[0]:.2f}' if error else 'refused'))
        print('  '.join(line), flush=True)
    success = SUCCESS_PX[kind]
    return {m: {'summary': summarise(r, success), 'cases': r} for m, r in rows.items()}


def _entries(homography: np.ndarray) -> list[float]:
    """List the 9 entries of a homography scaled to a bottom-right 1, row-major, for the JSON."""
    return [float(f'{v:.9g}') for v in (homography / homography[2, 2]).ravel()]


def plot(results: dict, path: Path) -> None:
    """Cumulative error distributions per setting and method (refusals shown as never within)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    settings = list(results)
    columns = min(3, len(settings))
    rows = -(-len(settings) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(settings):]:
        ax.axis('off')
    for ax, setting in zip(axes.ravel(), settings):
        for method, data in results[setting].items():
            refused = data['summary']['refused']
            keys = ['error_px'] + (['error_px_corrected'] if _corrected(data['cases']) else [])
            for key in keys if method == 'calibrate' else keys[:1]:
                errors = np.sort([c[key] if c[key] is not None else np.inf for c in data['cases']])
                share = np.arange(1, len(errors) + 1) / len(errors)
                label = f'{method} ({refused} refused)' + (', corrected truth' if key != 'error_px' else '')
                ax.step(np.minimum(errors, 50), share, where='post', label=label,
                        ls='--' if key != 'error_px' else '-')
        ax.axvline(SUCCESS_PX['real' if setting.startswith('real') else 'rig'], color='gray', lw=0.8, ls='--')
        ax.set_xscale('symlog', linthresh=1)
        ax.set_xlim(0, 50)
        ax.set_ylim(0, 1)
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel('error (IR px, mean over the overlap)')
        ax.legend(fontsize=7, loc='lower right')
    for row in axes:
        row[0].set_ylabel('share of cases with error <= x')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rigs', type=int, default=20, help='simulated rigs per dataset and setting')
    parser.add_argument('--pairs', type=int, nargs='+', default=[1, 8], help='pairs per simulated rig')
    parser.add_argument('--datasets', nargs='+', default=['msrs', 'roadscene'])
    parser.add_argument('--methods', nargs='+', default=['calibrate', 'sift', 'orb', 'ecc'])
    parser.add_argument('--seed', type=int, default=2026)
    parser.add_argument('--no-real', action='store_true', help='skip the vi_hr cross-resolution case')
    parser.add_argument('--self-registration', type=int, default=0, metavar='GROUPS',
                        help='also calibrate GROUPS groups of 8 registered pairs per dataset as they are')
    parser.add_argument('--merge', type=Path, nargs='+', help='combine the results of earlier runs instead')
    parser.add_argument('--real-consistency', action='store_true',
                        help='also calibrate each vi_hr IR frame against its low-resolution partner')
    parser.add_argument('--timing', action='store_true', help='also time one calibration of each kind')
    parser.add_argument('--exact-real', action='store_true',
                        help='also run the vi_hr frames against their own folded-intensity copies (exact truths), '
                             'without and with the rigs\' perspective')
    parser.add_argument('--strip-check', type=int, default=0, metavar='PAIRS',
                        help='also measure the local (left/right strip) offsets of PAIRS registered pairs per dataset')
    parser.add_argument('--truth-correction', type=int, default=0, metavar='PAIRS',
                        help='also grade the rigs against truths corrected for each data set\'s own misregistration, '
                             'measured on PAIRS pairs no rig uses (works with --merge)')
    parser.add_argument('--export-rig', type=Path, metavar='DIR',
                        help='write one simulated rig of the first dataset (DIR/ir, DIR/vi, DIR/truth.txt) and stop')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results' / 'registration.json')
    args = parser.parse_args()
    results = {}
    if args.export_rig:
        export_rig(args.export_rig, args.datasets[0], args.pairs[-1], np.random.default_rng(args.seed))
        return
    if args.merge:
        for path in args.merge:
            results.update(json.loads(path.read_text())['results'])
        args.rigs = args.pairs = args.datasets = args.methods = None
        write(results, args)
        return
    for count in args.pairs:
        for dataset in args.datasets:
            rng = np.random.default_rng([args.seed, count, len(dataset)])
            print(f'== {dataset}, {count} pair(s) per rig', flush=True)
            results[f'{dataset} x{count}'] = evaluate(simulated_cases(dataset, args.rigs, count, rng),
                                                      args.methods, 'rig')
    if args.timing:
        results['timing'] = timing()
    if args.real_consistency:
        results['real consistency'] = real_consistency()
    if args.strip_check:
        results['strip offsets'] = {d: strip_offsets(d, args.strip_check) for d in args.datasets}
        print(json.dumps(results['strip offsets']), flush=True)
    if args.self_registration:
        results['self-registration'] = {d: self_registration(d, args.self_registration, np.random.default_rng(1))
                                        for d in args.datasets}
    if args.exact_real:
        for perspective, label in ((0.0, ''), (RigRanges().perspective, ', perspective')):
            print(f'== exact cross-resolution{label}: folded-intensity vi_hr copies vs vi_hr', flush=True)
            results[f'real vi_hr exact truth x1{label}'] = evaluate(
                exact_real_cases(perspective, np.random.default_rng([args.seed, 500])), args.methods, 'real')
    if not args.no_real:
        print('== real cross-resolution: roadscene IR vs vi_hr', flush=True)
        results['real vi_hr x1'] = evaluate(real_cases(), args.methods, 'real')
    write(results, args)


def write(results: dict, args: argparse.Namespace) -> None:
    """Plot, summarise, print and save."""
    plot_path = args.out.with_suffix('.png')
    checks = ('self-registration', 'strip offsets', 'real consistency', 'timing', 'truth correction')
    rigs = {k: v for k, v in results.items() if k not in checks}
    if args.truth_correction:
        results['truth correction'] = correct_truths(rigs, args.truth_correction)
    plot(rigs, plot_path)
    summary = {setting: {m: d['summary'] for m, d in data.items()} for setting, data in rigs.items()}
    for setting, data in rigs.items():
        if 'calibrate' in data and _corrected(data['calibrate']['cases']):
            summary[setting]['calibrate, corrected truth'] = summarise(
                data['calibrate']['cases'], SUCCESS_PX['real' if setting.startswith('real') else 'rig'],
                'error_px_corrected')
    summary.update({k: results[k] for k in checks if k in results})
    save_results({'machine': machine(), 'args': {k: str(v) for k, v in vars(args).items()},
                  'note': 'seconds_per_pair: a shared 2-core machine while a training job and other engineers\' tests '
                          'ran (loaded, not clean timings); timing: the training job paused, other engineers\' '
                          'tests may have shared the CPU',
                  'summary': summary, 'plot': plot_path.name, 'results': results}, args.out)


if __name__ == '__main__':
    main()
