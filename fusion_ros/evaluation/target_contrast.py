"""
Target contrast: whether a person or a vehicle stays as distinct from its surroundings as in the better source.

The standard fusion metrics reward copying the brighter source (pixel max beats learned methods
on MI, VIF, Qabf and SSIM) and say nothing about the objects people fuse thermal for. For each
labelled box (YOLO format, as in msrs/boxes) on the gray images:

* boxes under ``MIN_BOX_PIXELS`` pixels are skipped (too few pixels for a stable mean);
* the ring is the box grown by half its width and height on every side, clipped to the image,
  minus the box;
* contrast = |mean inside the box - mean of the ring|;
* retention = fused contrast / max(IR contrast, visible contrast); boxes where both sources have a
  contrast under ``MIN_SOURCE_CONTRAST`` grey levels are skipped (nothing to keep).

Retention can exceed 1 (the fused image separates the target more than either source). The
report gives the mean and the median, overall and per class, for every method and for the
sources themselves (how much the IR or the visible image alone keeps), plus an empirical CDF.
Images are gray exactly as fusion_ros.evaluation.metrics reads them; IR of another size is resized into the
visible frame, as ``fusion-ros fuse`` registers it by default.
"""

import csv
import io
import json
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from tqdm import tqdm

from fusion_ros.core.imageio import list_images, pair_folders, write_bytes_atomic
from fusion_ros.evaluation.mask_io import BOX_CLASSES, box_to_pixels, parse_yolo_boxes
from fusion_ros.evaluation.metrics import pixel_baselines, read_gray
from fusion_ros.evaluation.plots import plot_cdfs

MIN_BOX_PIXELS = 36
MIN_SOURCE_CONTRAST = 2.0
SOURCES = ('infrared', 'visible')
Box = tuple[int, float, float, float, float]


def ring_window(y0: int, y1: int, x0: int, x1: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Return the box grown by half its height and width on each side, clipped to the image."""
    dy, dx = (y1 - y0) / 2, (x1 - x0) / 2
    return (max(int(round(y0 - dy)), 0), min(int(round(y1 + dy)), height),
            max(int(round(x0 - dx)), 0), min(int(round(x1 + dx)), width))


def box_contrast(image: np.ndarray, box: tuple[int, int, int, int]) -> Optional[float]:
    """
    |mean inside the box - mean of its ring| of a gray image; None when the ring is empty.

    The ring mean comes from the grown window's sum minus the box's sum, so no mask is built.
    """
    y0, y1, x0, x1 = box
    gy0, gy1, gx0, gx1 = ring_window(y0, y1, x0, x1, *image.shape[:2])
    inner = image[y0:y1, x0:x1].astype(np.float64)
    grown = image[gy0:gy1, gx0:gx1].astype(np.float64)
    ring_pixels = grown.size - inner.size
    if ring_pixels <= 0 or inner.size == 0:
        return None
    return abs(inner.mean() - (grown.sum() - inner.sum()) / ring_pixels)


def image_rows(stem: str, boxes: list[Box], planes: dict[str, np.ndarray]) -> list[dict]:
    """
    One row per usable box of one image: class, pixel box, the contrast of every plane and its retention.

    ``planes`` maps 'infrared', 'visible' and every method to a gray image of the visible frame's size.
    """
    height, width = planes['visible'].shape[:2]
    rows = []
    for index, (cls, cx, cy, w, h) in enumerate(boxes):
        pixel_box = box_to_pixels(cx, cy, w, h, height, width)
        y0, y1, x0, x1 = pixel_box
        if (y1 - y0) * (x1 - x0) < MIN_BOX_PIXELS:
            continue
        contrast = {name: box_contrast(plane, pixel_box) for name, plane in planes.items()}
        if contrast['infrared'] is None:
            continue
        best = max(contrast['infrared'], contrast['visible'])
        if best < MIN_SOURCE_CONTRAST:
            continue
        rows.append({'image': stem, 'box': index, 'class': BOX_CLASSES[cls + 1], 'pixels': (y1 - y0) * (x1 - x0),
                     'contrast': contrast, 'retention': {name: c / best for name, c in contrast.items()}})
    return rows


def _stats(values: list[float]) -> dict:
    """Mean, median and count (None when there are no values)."""
    if not values:
        return {'mean': None, 'median': None, 'n': 0}
    return {'mean': float(np.mean(values)), 'median': float(np.median(values)), 'n': len(values)}


def summarise(rows: list[dict], names: list[str]) -> dict[str, dict]:
    """Return {name: {'overall': stats, 'per_class': {class: stats}}} of the retention of every plane."""
    classes = BOX_CLASSES[1:]
    return {name: {'overall': _stats([r['retention'][name] for r in rows]),
                   'per_class': {c: _stats([r['retention'][name] for r in rows if r['class'] == c]) for c in classes}}
            for name in names}


def target_contrast_rows(methods: dict[str, Path], ir_dir: Path, vis_dir: Path, boxes_dir: Path,
                         baselines: bool = False, stems: Optional[list[str]] = None,
                         progress: bool = True) -> list[dict]:
    """
    Box rows of every pair that has a box file and a fused image from every method.

    Raises ValueError when no pair qualifies, so a wrong path cannot produce an empty table.
    """
    pairing = pair_folders(ir_dir, vis_dir)
    fused = {name: list_images(folder) for name, folder in methods.items()}
    usable = [(ir, vis) for ir, vis in pairing.pairs
              if (Path(boxes_dir) / f'{vis.stem}.txt').is_file() and all(vis.stem in f for f in fused.values())
              and (stems is None or vis.stem in stems)]
    if not usable:
        raise ValueError(f'no pair of {ir_dir} and {vis_dir} has a box file in {boxes_dir} and a fused image in '
                         f'every folder of {", ".join(f"{k}={v}" for k, v in methods.items())}')
    rows = []
    for ir_path, vis_path in tqdm(usable, desc='target contrast', disable=not progress, dynamic_ncols=True):
        vis = read_gray(vis_path)
        ir = read_gray(ir_path)
        if ir.shape != vis.shape:
            ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_LINEAR)
        planes = {'infrared': ir, 'visible': vis, **{n: read_gray(f[vis_path.stem]) for n, f in fused.items()}}
        if baselines:
            planes.update(pixel_baselines(ir, vis))
        box_file = Path(boxes_dir) / f'{vis_path.stem}.txt'
        rows += image_rows(vis_path.stem, parse_yolo_boxes(box_file.read_text(), str(box_file)), planes)
    return rows


def markdown(summary: dict[str, dict]) -> str:
    """Table: mean / median retention per plane, overall and per class, with box counts."""
    classes = BOX_CLASSES[1:]
    header = '| input | boxes | overall mean | overall median | ' + ' | '.join(f'{c} mean (n)' for c in classes) + ' |'
    lines = [header, '|---|---:|---:|---:|' + '---:|' * len(classes)]
    for name, s in summary.items():
        o = s['overall']
        cells = [f"{s['per_class'][c]['mean']:.3f} ({s['per_class'][c]['n']})" if s['per_class'][c]['n'] else '–'
                 for c in classes]
        lines.append(f"| {name} | {o['n']} | {o['mean']:.3f} | {o['median']:.3f} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + ('\n\nRetention = fused box contrast / max(IR, visible box contrast); box contrast = '
                               '|mean inside - mean of the ring grown by half the box size|; boxes under '
                               f'{MIN_BOX_PIXELS} px or with both source contrasts under {MIN_SOURCE_CONTRAST:g} '
                               'grey levels are skipped.\n')


def _csv(rows: list[dict], names: list[str]) -> str:
    """One line per box: where it is, its class, and the contrast and retention of every plane."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(['image', 'box', 'class', 'pixels'] + [f'contrast_{n}' for n in names]
                    + [f'retention_{n}' for n in names])
    for r in rows:
        writer.writerow([r['image'], r['box'], r['class'], r['pixels']] + [f"{r['contrast'][n]:.4f}" for n in names]
                        + [f"{r['retention'][n]:.4f}" for n in names])
    return out.getvalue()


def write_report(rows: list[dict], out_dir: Path, boxes_dir: Path) -> dict[str, dict]:
    """Write target_contrast.json / .md / .csv and cdf_target_contrast.png; return the summary."""
    names = list(rows[0]['retention'])
    summary = summarise(rows, names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {'boxes': str(boxes_dir), 'min_box_pixels': MIN_BOX_PIXELS, 'min_source_contrast': MIN_SOURCE_CONTRAST,
              'summary': summary}
    write_bytes_atomic(out_dir / 'target_contrast.json', (json.dumps(report, indent=2) + '\n').encode())
    write_bytes_atomic(out_dir / 'target_contrast.md', markdown(summary).encode())
    write_bytes_atomic(out_dir / 'target_contrast.csv', _csv(rows, names).encode())
    plot_cdfs({n: [r['retention'][n] for r in rows] for n in names}, 'target contrast retention',
              out_dir / 'cdf_target_contrast.png')
    return summary
