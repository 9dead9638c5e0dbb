"""`fusion-ros evaluate`: matching, per-image values, summaries, baselines, plots and CLI errors."""

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_ros.cli import evaluate as evaluate_command
from fusion_ros.evaluation import evaluate
from fusion_ros.evaluation.metrics import compute_all, METRIC_NAMES, read_gray

STEMS = ('a', 'b', 'c', 'd')


def _gray(bgr_or_gray: np.ndarray) -> np.ndarray:
    return bgr_or_gray if bgr_or_gray.ndim == 2 else cv2.cvtColor(bgr_or_gray, cv2.COLOR_BGR2GRAY)


def make_dataset(root: Path) -> dict[str, Path]:
    """4 pairs of 64x48 images plus an IR-only, a visible-only, an unreadable and an unpaired fused file."""
    rng = np.random.default_rng(7)
    dirs = {k: root / k for k in ('ir', 'vis', 'fused', 'fused_max')}
    for folder in dirs.values():
        folder.mkdir()
    for stem in STEMS:
        ir = cv2.GaussianBlur(rng.integers(0, 256, (48, 64), dtype=np.uint8), (5, 5), 0)
        vis = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (3, 3), 0)
        cv2.imwrite(str(dirs['ir'] / f'{stem}.png'), ir)
        cv2.imwrite(str(dirs['vis'] / f'{stem}.png'), vis)
        cv2.imwrite(str(dirs['fused_max'] / f'{stem}.png'), np.maximum(ir, _gray(vis)))
    fused = dirs['fused']
    cv2.imwrite(str(fused / 'a.png'), cv2.imread(str(dirs['fused_max'] / 'a.png')))      # max fusion
    cv2.imwrite(str(fused / 'b.bmp'), rng.integers(0, 256, (48, 64), dtype=np.uint8))    # other extension
    (fused / 'c.png').write_bytes(b'not an image at all')                               # unreadable
    cv2.imwrite(str(fused / 'd.png'), cv2.imread(str(dirs['vis'] / 'd.png')))            # color, = visible
    cv2.imwrite(str(fused / 'z.png'), rng.integers(0, 256, (48, 64), dtype=np.uint8))    # matches no pair
    cv2.imwrite(str(dirs['ir'] / 'e.png'), rng.integers(0, 256, (48, 64), dtype=np.uint8))   # no visible partner
    cv2.imwrite(str(dirs['vis'] / 'f.png'), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))  # no IR partner
    return dirs


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline='') as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='fusion-ros')
    evaluate_command.add_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['evaluate', *argv])
    return args.func(args)


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    return make_dataset(tmp_path)


def test_per_image_values_equal_compute_all_and_problems_are_reported(data, tmp_path, capsys):
    out = tmp_path / 'out'
    evaluate.evaluate_folders({'fused': data['fused']}, data['ir'], data['vis'], out, workers=1, progress=False)
    columns, rows = read_csv(out / 'per_image.csv')
    assert columns == ['name', *METRIC_NAMES]
    assert [r['name'] for r in rows] == ['a.png', 'b.bmp', 'd.png']
    for row in rows:
        stem = Path(row['name']).stem
        with np.errstate(divide='ignore', invalid='ignore'):  # d.png: undefined SCD, nan on both sides
            expected = compute_all(read_gray(data['fused'] / row['name']), read_gray(data['ir'] / f'{stem}.png'),
                                   read_gray(data['vis'] / f'{stem}.png'))
        for metric in METRIC_NAMES:
            assert float(row[metric]) == pytest.approx(expected[metric], abs=1e-9, rel=1e-12, nan_ok=True), \
                (row['name'], metric)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith('warning:')]
    for name in ('c.png', 'e.png', 'f.png', 'z.png'):
        assert any(name in line for line in warnings), name
    assert not list(out.glob('per_image_*.csv'))  # no other method, no baselines


def test_summary_json_and_markdown_agree_with_the_csv(data, tmp_path):
    out = tmp_path / 'out'
    summary = evaluate.evaluate_folders({'fused': data['fused']}, data['ir'], data['vis'], out,
                                        workers=1, progress=False)
    assert json.loads((out / 'summary.json').read_text()) == summary
    _, rows = read_csv(out / 'per_image.csv')
    for metric in METRIC_NAMES:
        values = np.array([float(r[metric]) for r in rows])
        values = values[np.isfinite(values)]  # d.png (fused == visible) has an undefined SCD
        stats = summary['fused'][metric]
        assert stats['n'] == (2 if metric == 'SCD' else 3)
        assert stats['mean'] == pytest.approx(values.mean(), abs=1e-9)
        assert stats['std'] == pytest.approx(values.std(), abs=1e-9)
    table = (out / 'summary.md').read_text()
    assert '| fused | 3 |' in table and '±' in table
    assert all(f' {m} ' in table.splitlines()[0] for m in METRIC_NAMES)
    assert 'CDDFuse' in table and 'nats' in table and 'data_range 2' in table


def test_max_baseline_equals_a_folder_of_max_images(data, tmp_path):
    out = tmp_path / 'out'
    summary = evaluate.evaluate_folders({'fused_max': data['fused_max']}, data['ir'], data['vis'], out,
                                        baselines=True, workers=1, progress=False)
    assert list(summary) == ['fused_max', 'max', 'mean']
    _, main_rows = read_csv(out / 'per_image.csv')
    _, max_rows = read_csv(out / 'per_image_max.csv')
    assert [r['name'] for r in max_rows] == [f'{s}.png' for s in STEMS]
    for main_row, max_row in zip(main_rows, max_rows):
        for metric in METRIC_NAMES:
            assert float(max_row[metric]) == pytest.approx(float(main_row[metric]), abs=1e-9)
    for metric in METRIC_NAMES:
        assert summary['max'][metric]['mean'] == pytest.approx(summary['fused_max'][metric]['mean'], abs=1e-9)
    # The mean baseline is the rounded average of the 8-bit gray sources.
    _, mean_rows = read_csv(out / 'per_image_mean.csv')
    ir, vis = read_gray(data['ir'] / 'b.png'), read_gray(data['vis'] / 'b.png')
    expected = compute_all(np.rint((ir.astype(np.float64) + vis) / 2).astype(np.float32), ir, vis)
    row = next(r for r in mean_rows if r['name'] == 'b.png')
    assert all(float(row[m]) == pytest.approx(expected[m], abs=1e-9) for m in METRIC_NAMES)


def test_cdf_plots_are_valid_pngs(data, tmp_path):
    out = tmp_path / 'out'
    evaluate.evaluate_folders({'fused': data['fused'], 'other': data['fused_max']}, data['ir'], data['vis'], out,
                              baselines=True, workers=1, progress=False)
    for metric in METRIC_NAMES:
        image = cv2.imread(str(out / f'cdf_{metric}.png'))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, metric


def test_two_workers_give_the_same_reports_as_inline(data, tmp_path):
    methods = {'fused': data['fused'], 'other': data['fused_max']}
    inline = evaluate.evaluate_folders(methods, data['ir'], data['vis'], tmp_path / 'o1', baselines=True,
                                       workers=1, progress=False)
    pooled = evaluate.evaluate_folders(methods, data['ir'], data['vis'], tmp_path / 'o2', baselines=True,
                                       workers=2, progress=False)
    assert json.dumps(pooled) == json.dumps(inline)
    for name in ('per_image.csv', 'per_image_other.csv', 'per_image_max.csv', 'per_image_mean.csv'):
        assert (tmp_path / 'o2' / name).read_text() == (tmp_path / 'o1' / name).read_text()


def test_ir_of_another_size_is_resized_to_the_visible_frame(data, tmp_path, capsys):
    ir = cv2.imread(str(data['ir'] / 'a.png'), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(data['ir'] / 'a.png'), cv2.resize(ir, (32, 24), interpolation=cv2.INTER_AREA))
    summary = evaluate.evaluate_folders({'fused': data['fused']}, data['ir'], data['vis'], tmp_path / 'out',
                                        baselines=True, workers=1, progress=False)
    assert summary['fused']['EN']['n'] == 3 and summary['max']['EN']['n'] == 4
    assert 'a.png' not in ''.join(line for line in capsys.readouterr().err.splitlines() if 'warning' in line)


def test_cli_runs_with_extras_and_baselines(data, tmp_path, capsys):
    out = tmp_path / 'report'
    code = cli(['--fused', str(data['fused']), '--ir', str(data['ir']), '--vis', str(data['vis']),
                '--out', str(out), '--baselines', '--workers', '1', '--quiet',
                '--extra', f'maxfolder={data["fused_max"]}'])
    assert code == 0
    assert set(json.loads((out / 'summary.json').read_text())) == {'fused', 'maxfolder', 'max', 'mean'}
    assert (out / 'per_image.csv').is_file() and (out / 'per_image_maxfolder.csv').is_file()
    assert '| maxfolder |' in capsys.readouterr().out


def test_cli_exit_code_2_on_missing_folder_or_nothing_matched(data, tmp_path, capsys):
    missing = tmp_path / 'does_not_exist'
    code = cli(['--fused', str(missing), '--ir', str(data['ir']), '--vis', str(data['vis']),
                '--out', str(tmp_path / 'out'), '--workers', '1', '--quiet'])
    assert code == 2
    err = capsys.readouterr().err
    assert 'error' in err and str(missing) in err

    empty = tmp_path / 'empty'
    empty.mkdir()
    code = cli(['--fused', str(empty), '--ir', str(data['ir']), '--vis', str(data['vis']),
                '--out', str(tmp_path / 'out'), '--workers', '1', '--quiet'])
    assert code == 2
    assert str(empty) in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_label_clash_with_a_baseline_is_an_error(data, tmp_path):
    with pytest.raises(ValueError, match='unique'):
        evaluate.evaluate_folders({'max': data['fused']}, data['ir'], data['vis'], tmp_path / 'out',
                                  baselines=True, workers=1, progress=False)


def test_cli_exit_code_1_when_every_fused_image_was_skipped(data, tmp_path, capsys):
    """F9: all fused files unreadable gave an empty report and exit status 0."""
    broken = tmp_path / 'broken'
    broken.mkdir()
    for stem in STEMS:
        (broken / f'{stem}.png').write_bytes(b'not an image')
    code = cli(['--fused', str(broken), '--ir', str(data['ir']), '--vis', str(data['vis']),
                '--out', str(tmp_path / 'out'), '--workers', '1', '--quiet'])
    assert code == 1
    err = capsys.readouterr().err
    assert 'no image of broken could be scored' in err and 'c.png' in err


def test_same_stem_twice_in_a_folder_is_reported(data, tmp_path, capsys):
    """F8 (evaluate): a.png beside a.jpg was silently ignored."""
    cv2.imwrite(str(data['vis'] / 'a.jpg'), cv2.imread(str(data['vis'] / 'a.png')))
    evaluate.evaluate_folders({'fused': data['fused']}, data['ir'], data['vis'], tmp_path / 'out', workers=1,
                              progress=False)
    err = capsys.readouterr().err
    assert 'a.png' in err and 'same name as' in err and 'a.jpg' in err
