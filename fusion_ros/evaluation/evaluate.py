"""
Score folders of fused images with the standard fusion metrics (the library behind `fusion-ros evaluate`).

Fused files are matched to the IR + visible pairs by file stem (a fused image
keeps the visible file's name; extensions may differ). Metrics follow the
CDDFuse evaluator conventions (see fusion_ros.evaluation.metrics) so that the numbers can
be set beside published tables. Several methods are scored at once, optionally together
with the trivial pixel-wise max and mean fusions of the sources, which every learned
method should beat. Missing partners and unreadable files are reported and skipped.

Writes per_image.csv (main method), per_image_<method>.csv (the others),
summary.json, summary.md and one cdf_<metric>.png per metric.
"""

from concurrent.futures import as_completed, ProcessPoolExecutor
import csv
from dataclasses import dataclass
import io
import json
import math
import multiprocessing
import os
from pathlib import Path
import re
import sys
from typing import Optional

import cv2
import numpy as np
from tqdm import tqdm

from fusion_ros.core.imageio import pair_folders, read_image, scan_images, shadowed_reason, write_bytes_atomic
from fusion_ros.evaluation.metrics import compute_all, METRIC_NAMES, pixel_baselines
from fusion_ros.evaluation.plots import plot_cdfs

BASELINES = ('max', 'mean')
NOTE = ('Metrics follow the CDDFuse evaluator conventions: 8-bit BGR->GRAY inputs, A = infrared, B = visible; '
        'MI in nats; SSIM with data_range 2. Values are mean ± population std over images.')

Stats = dict[str, Optional[float]]
Summary = dict[str, dict[str, Stats]]


@dataclass(frozen=True)
class _PairJob:
    """One IR + visible pair and the fused file of every method that has one (picklable for the pool)."""

    stem: str
    ir: Path
    vis: Path
    fused: dict[str, Path]
    baselines: bool


@dataclass
class _PairResult:
    """Per-method (file name, metrics) of one pair, plus the reasons of whatever was skipped."""

    stem: str
    rows: dict[str, tuple[str, dict[str, float]]]
    warnings: list[str]


def _gray_u8(path: Path) -> np.ndarray:
    """8-bit gray exactly as metrics.read_gray builds it, before the float cast (baselines need the uint8)."""
    return cv2.cvtColor(read_image(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)


def _scores(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """compute_all without numpy's divide warnings: degenerate images give inf/nan, handled in the summary."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return compute_all(fused, ir, vis)


def _evaluate_pair(job: _PairJob) -> _PairResult:
    """
    Score every method's fused image of one pair; runs in a worker, so it reports errors instead of raising.

    Sources are read once per pair and shared by all methods, which is why the unit of work is the pair.
    """
    result = _PairResult(job.stem, {}, [])
    try:
        ir_u8, vis_u8 = _gray_u8(job.ir), _gray_u8(job.vis)
    except Exception as err:  # a worker must never take the whole run down
        result.warnings.append(f'skipped pair {job.stem!r}: {err}')
        return result
    if ir_u8.shape != vis_u8.shape:  # the same 'resize' registration `fusion-ros fuse` applies by default
        ir_u8 = cv2.resize(ir_u8, (vis_u8.shape[1], vis_u8.shape[0]), interpolation=cv2.INTER_LINEAR)
    ir, vis = ir_u8.astype(np.float32), vis_u8.astype(np.float32)
    for method, path in job.fused.items():
        try:
            fused = _gray_u8(path).astype(np.float32)
            result.rows[method] = (path.name, _scores(fused, ir, vis))
        except Exception as err:
            result.warnings.append(f'[{method}] skipped {path}: {type(err).__name__}: {err}')
    if job.baselines:
        for method, image in pixel_baselines(ir_u8, vis_u8).items():
            result.rows[method] = (job.vis.name, _scores(image.astype(np.float32), ir, vis))
    return result


def _init_worker() -> None:
    """One OpenCV thread per process: the pool already uses every core, more threads only contend."""
    cv2.setNumThreads(1)


def _warn(message: str) -> None:
    """Warning line on stderr that does not break the progress bar."""
    tqdm.write(f'warning: {message}', file=sys.stderr)


def _run_jobs(jobs: list[_PairJob], workers: int, progress: bool) -> list[_PairResult]:
    """Evaluate all pairs, inline for one worker (debuggable, no pickling) or in a process pool."""
    bar = tqdm(total=len(jobs), desc='evaluate', unit='pair', disable=not progress, dynamic_ncols=True)
    results = []
    with bar:
        if workers <= 1:
            for job in jobs:
                results.append(_evaluate_pair(job))
                bar.update()
        else:
            # 'spawn', not fork: a child forked while OpenCV's thread pool is busy or locked deadlocks.
            context = multiprocessing.get_context('spawn')
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                                     initializer=_init_worker) as pool:
                for future in as_completed([pool.submit(_evaluate_pair, job) for job in jobs]):
                    results.append(future.result())
                    bar.update()
    return sorted(results, key=lambda r: r.stem)  # completion order is arbitrary; outputs must be stable


def _stats(values: list[float]) -> Stats:
    """Mean/std/n over the finite values: one inf PSNR (fused == both sources) must not make the mean inf."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {'mean': None, 'std': None, 'n': 0}
    return {'mean': float(finite.mean()), 'std': float(finite.std()), 'n': int(finite.size)}


def _write_text_atomic(path: Path, text: str) -> None:
    """Write a report atomically, so an interrupted run never leaves a truncated one."""
    write_bytes_atomic(path, text.encode('utf-8'))


def _csv_text(rows: list[tuple[str, dict[str, float]]]) -> str:
    """Per-image table; repr-exact floats so the CSV reproduces compute_all bit for bit."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['name', *METRIC_NAMES])
    for name, values in rows:
        writer.writerow([name, *(repr(float(values[m])) for m in METRIC_NAMES)])
    return buffer.getvalue()


def _fmt(value: Optional[float]) -> str:
    """Four significant digits: enough to compare methods, short enough for a readable table."""
    return '–' if value is None else f'{value:.4g}'


def markdown(summary: Summary) -> str:
    """Methods x metrics table of mean ± std, with the conventions note that makes numbers comparable."""
    lines = ['| method | n | ' + ' | '.join(METRIC_NAMES) + ' |',
             '|---|---:|' + '---:|' * len(METRIC_NAMES)]
    for method, per_metric in summary.items():
        n = max((s['n'] for s in per_metric.values()), default=0)
        cells = [f"{_fmt(s['mean'])} ± {_fmt(s['std'])}" if s['n'] else '–' for s in per_metric.values()]
        lines.append(f'| {method} | {n} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + f'\n\n{NOTE}\n'


def _file_label(method: str) -> str:
    """Make a method label safe as part of a file name (labels come from the command line)."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', method).strip('.') or 'method'


def evaluate_folders(methods: dict[str, Path], ir_dir: Path, vis_dir: Path, out_dir: Path,
                     baselines: bool = False, workers: Optional[int] = None, progress: bool = True) -> Summary:
    """
    Score each method's folder against the IR + visible pairs and write the reports to out_dir.

    The first entry of `methods` is the main method (per_image.csv); the others, and the 'max'/'mean'
    baselines, get per_image_<method>.csv. Returns {method: {metric: {'mean', 'std', 'n'}}}; mean and std
    are over the finite per-image values (None when there are none), n counts them.
    Raises FileNotFoundError when a folder does not exist and ValueError when a method folder has no file
    matching any pair, or when labels clash, so that a mistyped path fails loudly instead of scoring nothing.
    """
    if not methods:
        raise ValueError('no method folder to evaluate')
    labels = list(methods) + (list(BASELINES) if baselines else [])
    if len(set(labels)) != len(labels):
        raise ValueError(f'method labels must be unique (baselines use {BASELINES}): {labels}')
    if len({_file_label(m) for m in labels}) != len(labels):
        raise ValueError(f'method labels collide once made file-name safe: {labels}')
    folders = {'IR': Path(ir_dir), 'visible': Path(vis_dir), **{f'fused ({m})': Path(p) for m, p in methods.items()}}
    for role, folder in folders.items():
        if not folder.is_dir():
            raise FileNotFoundError(f'{role} folder does not exist: {folder}')

    pairing = pair_folders(ir_dir, vis_dir)
    for path in pairing.ir_only:
        _warn(f'skipped {path}: no visible image with the same name in {vis_dir}')
    for path in pairing.vis_only:
        _warn(f'skipped {path}: no IR image with the same name in {ir_dir}')
    listings = {m: scan_images(p) for m, p in methods.items()}
    for ignored, used in pairing.shadowed + [s for listing in listings.values() for s in listing.shadowed]:
        _warn(f'skipped {ignored}: {shadowed_reason(ignored, used)}')
    if not pairing.pairs:
        raise ValueError(f'no IR + visible pair: no common file name in {ir_dir} and {vis_dir}')

    fused_by_method = {m: listing.files for m, listing in listings.items()}
    stems = {vis.stem for _, vis in pairing.pairs}
    for method, files in fused_by_method.items():
        if not files.keys() & stems:
            raise ValueError(f'no fused image in {methods[method]} matches an IR + visible pair of '
                             f'{ir_dir} and {vis_dir} (fused files keep the visible file name)')
        for stem in sorted(files.keys() - stems):
            _warn(f'[{method}] skipped {files[stem]}: no IR + visible pair with that name')
    jobs = []
    for ir_path, vis_path in pairing.pairs:
        fused = {m: files[vis_path.stem] for m, files in fused_by_method.items() if vis_path.stem in files}
        for method in [m for m in methods if m not in fused]:
            _warn(f'[{method}] no fused image for {vis_path.name} in {methods[method]}')
        jobs.append(_PairJob(vis_path.stem, ir_path, vis_path, fused, baselines))

    results = _run_jobs(jobs, workers or os.cpu_count() or 1, progress)
    rows: dict[str, list[tuple[str, dict[str, float]]]] = {m: [] for m in labels}
    for result in results:
        for message in result.warnings:
            _warn(message)
        for method, row in result.rows.items():
            rows[method].append(row)

    summary = {m: {metric: _stats([v[metric] for _, v in rows[m]]) for metric in METRIC_NAMES} for m in labels}
    for method in labels:
        dropped = sum(len(rows[method]) - s['n'] for s in summary[method].values())
        if dropped:
            _warn(f'[{method}] {dropped} non-finite value(s) left out of the means (e.g. PSNR of F == A == B)')

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    main = labels[0]
    for method in labels:
        name = 'per_image.csv' if method == main else f'per_image_{_file_label(method)}.csv'
        _write_text_atomic(out_dir / name, _csv_text(rows[method]))
    _write_text_atomic(out_dir / 'summary.json', json.dumps(summary, indent=2, allow_nan=False) + '\n')
    _write_text_atomic(out_dir / 'summary.md', markdown(summary))
    for metric in METRIC_NAMES:
        plot_cdfs({m: [v[metric] for _, v in rows[m]] for m in labels}, metric, out_dir / f'cdf_{metric}.png')
    return summary
