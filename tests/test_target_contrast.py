"""Target contrast: boxes with known contrast, the ring's clipping, the skip rules, the report and the CLI."""

from pathlib import Path
import json

import cv2
import numpy as np
import pytest

from fusion_ros.cli.main import main as cli_main
from fusion_ros.evaluation.target_contrast import box_contrast, image_rows, MIN_SOURCE_CONTRAST, ring_window, \
    summarise, target_contrast_rows, write_report

DATA = Path(__file__).parent / 'data'


def scene(box_value: float, ring_value: float, size=(120, 160), box=(40, 80, 60, 100)) -> np.ndarray:
    """Build a flat image whose box is box_value and whose ring (the grown window) is ring_value."""
    image = np.full(size, 7.0, np.float32)             # outside the ring: must not count
    y0, y1, x0, x1 = box
    gy0, gy1, gx0, gx1 = ring_window(y0, y1, x0, x1, *size)
    image[gy0:gy1, gx0:gx1] = ring_value
    image[y0:y1, x0:x1] = box_value
    return image


def yolo(box, size=(120, 160), cls=0):
    """Return the normalised YOLO box of a pixel box (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    h, w = size
    return (cls, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h)


def test_ring_is_the_box_grown_by_half_its_size_and_clipped():
    assert ring_window(40, 80, 60, 100, 120, 160) == (20, 100, 40, 120)
    assert ring_window(0, 10, 150, 160, 120, 160) == (0, 15, 145, 160)


def test_known_contrasts_and_retention():
    ir, vis, fused = scene(200, 100), scene(60, 50), scene(150, 100)
    assert box_contrast(ir, (40, 80, 60, 100)) == pytest.approx(100)
    rows = image_rows('a', [yolo((40, 80, 60, 100))], {'infrared': ir, 'visible': vis, 'f': fused})
    assert len(rows) == 1 and rows[0]['class'] == 'person'
    assert rows[0]['contrast'] == pytest.approx({'infrared': 100, 'visible': 10, 'f': 50})
    assert rows[0]['retention'] == pytest.approx({'infrared': 1.0, 'visible': 0.1, 'f': 0.5})


def test_contrast_is_absolute_and_the_ring_excludes_the_box():
    dark_target = scene(20, 120)                       # a cold object on a warm background
    assert box_contrast(dark_target, (40, 80, 60, 100)) == pytest.approx(100)
    corner = np.zeros((50, 50), np.float32)
    corner[:10, :10] = 90
    corner[10:15, :15] = 30                            # the clipped ring around the corner box
    corner[:10, 10:15] = 30
    assert box_contrast(corner, (0, 10, 0, 10)) == pytest.approx(60)


def test_small_boxes_and_flat_sources_are_skipped():
    ir, vis = scene(200, 100), scene(60, 50)
    tiny = (10, 15, 10, 17)                            # 35 pixels
    flat = scene(50 + MIN_SOURCE_CONTRAST / 2, 50)
    rows = image_rows('a', [yolo(tiny)], {'infrared': ir, 'visible': vis, 'f': ir})
    assert rows == []
    rows = image_rows('a', [yolo((40, 80, 60, 100))], {'infrared': flat, 'visible': flat, 'f': ir})
    assert rows == []


def test_summary_per_class():
    ir, vis = scene(200, 100), scene(60, 50)
    planes = {'infrared': ir, 'visible': vis, 'f': scene(180, 100)}
    rows = image_rows('a', [yolo((40, 80, 60, 100), cls=0), yolo((40, 80, 60, 100), cls=2)], planes)
    planes['f'] = scene(140, 100)
    rows += image_rows('b', [yolo((40, 80, 60, 100), cls=0)], planes)
    summary = summarise(rows, ['infrared', 'visible', 'f'])
    assert summary['f']['overall'] == pytest.approx({'mean': (0.8 + 0.8 + 0.4) / 3, 'median': 0.8, 'n': 3})
    assert summary['f']['per_class']['person'] == pytest.approx({'mean': 0.6, 'median': 0.6, 'n': 2})
    assert summary['f']['per_class']['bicycle']['n'] == 0


def write_case(root: Path) -> tuple[Path, Path, Path, Path]:
    """Write a pair with one box and a fused image keeping 40 % of the IR contrast."""
    folders = [root / n for n in ('ir', 'vi', 'fused', 'boxes')]
    for folder in folders:
        folder.mkdir()
    cv2.imwrite(str(folders[0] / 'x.png'), scene(200, 100).astype(np.uint8))
    cv2.imwrite(str(folders[1] / 'x.png'), cv2.cvtColor(scene(60, 50).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    cv2.imwrite(str(folders[2] / 'x.png'), scene(140, 100).astype(np.uint8))
    folders[3].joinpath('x.txt').write_text(' '.join(map(str, yolo((40, 80, 60, 100)))) + '\n')
    return tuple(folders)


def test_report_files_and_baselines(tmp_path):
    ir, vis, fused, boxes = write_case(tmp_path)
    rows = target_contrast_rows({'model': fused}, ir, vis, boxes, baselines=True, progress=False)
    summary = write_report(rows, tmp_path / 'report', boxes)
    assert summary['model']['overall']['mean'] == pytest.approx(0.4)
    assert summary['max']['overall']['mean'] == pytest.approx(1.0)   # max of the sources: the IR everywhere here
    assert summary['mean']['overall']['mean'] == pytest.approx(0.55)
    saved = json.loads((tmp_path / 'report' / 'target_contrast.json').read_text())
    assert saved['summary']['model']['per_class']['person']['n'] == 1
    assert (tmp_path / 'report' / 'cdf_target_contrast.png').stat().st_size > 1000
    assert (tmp_path / 'report' / 'target_contrast.csv').read_text().splitlines()[1].startswith('x,0,person,1600,')
    with pytest.raises(ValueError, match='has a box file'):
        target_contrast_rows({'model': fused}, ir, vis, tmp_path / 'report', progress=False)


def test_real_msrs_boxes_sources_bound_retention():
    """On the bundled MSRS pairs, the better source keeps exactly 1 and the other at most 1."""
    pairs = DATA / 'pairs'
    rows = target_contrast_rows({'max': pairs / 'vi'}, pairs / 'ir', pairs / 'vi', DATA / 'boxes', progress=False)
    assert len(rows) >= 5
    for row in rows:
        sources = row['retention']['infrared'], row['retention']['visible']
        assert max(sources) == pytest.approx(1.0) and min(sources) <= 1.0


def test_evaluate_cli_writes_the_target_contrast_report(tmp_path, capsys):
    ir, vis, fused, boxes = write_case(tmp_path)
    code = cli_main(['evaluate', '--fused', str(fused), '--ir', str(ir), '--vis', str(vis), '--out',
                     str(tmp_path / 'out'), '--boxes', str(boxes), '--quiet', '--workers', '1'])
    assert code == 0
    assert 'target contrast' in capsys.readouterr().out.lower()
    summary = json.loads((tmp_path / 'out' / 'target_contrast.json').read_text())['summary']
    assert summary['fused']['overall']['mean'] == pytest.approx(0.4)
