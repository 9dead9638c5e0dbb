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
"""

import argparse
import json
from pathlib import Path
import sys
import time

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
from fusion_ros.evaluation.rig_simulation import random_rig, render_ir  # noqa: E402

DATASETS = REPO.parent / 'shared' / 'datasets'
RIG_SIZE = {'msrs': (640, 480), 'roadscene': (464, 320)}   # RoadScene frames vary: a common centre crop
SUCCESS_PX = {'rig': 2.0, 'real': 3.0}


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
    """Yield (name, IR frames, visible frames, true homography) for simulated rigs of a dataset."""
    paths = usable(dataset)
    for rig in range(rigs):
        truth, ir_size = random_rig(rng, RIG_SIZE[dataset])
        chosen = rng.choice(len(paths), pairs_per_rig, replace=False)
        ir_frames, vis_frames = [], []
        for index in chosen:
            ir, vis = load_pair(dataset, paths[index])
            ir_frames.append(render_ir(ir, truth, ir_size, rng=rng))
            vis_frames.append(vis)
        yield f'{dataset}/rig{rig:02d}', ir_frames, vis_frames, truth


def export_rig(folder: Path, dataset: str, pairs: int, rng: np.random.Generator) -> None:
    """Write one simulated rig as folders for `fusion-ros calibrate`, with its true homography."""
    name, ir_frames, vis_frames, truth = next(simulated_cases(dataset, 1, pairs, rng))
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
    """Yield (name, [IR], [vi_hr], truth) for the RoadScene cross-resolution frames."""
    for path in sorted((DATASETS / 'roadscene' / 'vi_hr').iterdir()):
        ir = cv2.imread(str(DATASETS / 'roadscene' / 'ir' / path.name), cv2.IMREAD_GRAYSCALE)
        low = cv2.imread(str(DATASETS / 'roadscene' / 'vi' / path.name), cv2.IMREAD_COLOR)
        high = cv2.imread(str(path), cv2.IMREAD_COLOR)
        yield f'vi_hr/{path.stem}', [ir], [high], real_truth(low, high)


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


def strip_offsets(dataset: str, count: int, reach: int = 8) -> dict:
    """
    Check a dataset's own registration locally: the best shift of the IR edges in a left and a right strip.

    Each registered pair's IR and visible edge fields (full resolution) are compared in the left
    and the right third of the frame at every shift within reach pixels; no optimiser, no model.
    Equal shifts on both sides mean a translation; a left shift above the right one, pair after
    pair, means the IR image is narrower than the visible one: a scale error of the dataset.
    """
    rows = []
    for path in usable(dataset)[::max(1, len(usable(dataset)) // count)][:count]:
        ir, vis = load_pair(dataset, path)
        ir_field = orientation_field(to_gray_float(ir))
        vis_field = orientation_field(to_gray_float(vis))
        height, width = ir.shape
        best = []
        for x0, x1 in ((reach, width // 3), (2 * width // 3, width - reach)):
            scores = {(dx, dy): field_correlation(ir_field[reach:height - reach, x0:x1],
                                                  vis_field[reach + dy:height - reach + dy, x0 + dx:x1 + dx])
                      for dx in range(-reach, reach + 1) for dy in range(-reach, reach + 1)}
            best.append(max(scores, key=scores.get))
        rows.append({'pair': path.stem, 'left_shift': best[0], 'right_shift': best[1]})
    spread = np.array([r['left_shift'][0] - r['right_shift'][0] for r in rows], float)
    return {'pairs': rows, 'left_minus_right_x_px_median': float(np.median(spread)),
            'share_left_above_right': round(float(np.mean(spread > 0)), 3),
            'share_left_below_right': round(float(np.mean(spread < 0)), 3)}


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
    for name, ir_frames, vis_frames, truth in real_cases():
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
    _, ir_frames, vis_frames, _ = next(real_cases())
    _, rig_ir, rig_vis, _ = next(simulated_cases('roadscene', 1, 8, np.random.default_rng(18)))
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


def summarise(rows: list[dict], success_px: float) -> dict:
    """Median error, share within success_px of all cases, refusals, wrong answers, time."""
    errors = np.array([r['error_px'] for r in rows if r['error_px'] is not None])
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
    for name, ir_frames, vis_frames, truth in cases:
        ir_size = (ir_frames[0].shape[1], ir_frames[0].shape[0])
        vis_size = (vis_frames[0].shape[1], vis_frames[0].shape[0])
        resize = np.diag([vis_size[0] / ir_size[0], vis_size[1] / ir_size[1], 1.0])
        line = [name, f'resize {ir_pixel_error(resize, truth, ir_size, vis_size)[0]:.1f}']
        for method in methods:
            homography, reason, seconds = run_method(method, ir_frames, vis_frames)
            error = None if homography is None else ir_pixel_error(homography, truth, ir_size, vis_size)
            rows[method].append({'case': name, 'error_px': None if error is None else round(error[0], 3),
                                 'max_error_px': None if error is None else round(error[1], 3),
                                 'refusal': reason, 'seconds_per_pair': round(seconds / len(ir_frames), 3)})
            line.append(f'{method} ' + (f'{error[0]:.2f}' if error else 'refused'))
        print('  '.join(line), flush=True)
    success = SUCCESS_PX[kind]
    return {m: {'summary': summarise(r, success), 'cases': r} for m, r in rows.items()}


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
            errors = np.sort([c['error_px'] if c['error_px'] is not None else np.inf for c in data['cases']])
            share = np.arange(1, len(errors) + 1) / len(errors)
            refused = data['summary']['refused']
            ax.step(np.minimum(errors, 50), share, where='post', label=f'{method} ({refused} refused)')
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
    parser.add_argument('--strip-check', type=int, default=0, metavar='PAIRS',
                        help='also measure the local (left/right strip) offsets of PAIRS registered pairs per dataset')
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
    if not args.no_real:
        print('== real cross-resolution: roadscene IR vs vi_hr', flush=True)
        results['real vi_hr x1'] = evaluate(real_cases(), args.methods, 'real')
    write(results, args)


def write(results: dict, args: argparse.Namespace) -> None:
    """Plot, summarise, print and save."""
    plot_path = args.out.with_suffix('.png')
    checks = ('self-registration', 'strip offsets', 'real consistency', 'timing')
    rigs = {k: v for k, v in results.items() if k not in checks}
    plot(rigs, plot_path)
    summary = {setting: {m: d['summary'] for m, d in data.items()} for setting, data in rigs.items()}
    summary.update({k: results[k] for k in checks if k in results})
    save_results({'machine': machine(), 'args': {k: str(v) for k, v in vars(args).items()},
                  'note': 'seconds_per_pair: a shared 2-core machine while a training job and other engineers\' tests '
                          'ran (loaded, not clean timings); timing: the training job paused, other engineers\' '
                          'tests may have shared the CPU',
                  'summary': summary, 'plot': plot_path.name, 'results': results}, args.out)


if __name__ == '__main__':
    main()
