"""training.evaluation.step_table: held-out metrics per step as fractions of a reference on the same pairs."""

import csv
import json
from pathlib import Path

import pytest

from training.evaluation.compare import BAR_METRICS
from training.evaluation.step_table import best_step, main, reference_means, step_rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open('w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def per_image(path: Path, values: dict[str, float]) -> Path:
    """A per-image CSV in compare's layout: one row per pair, every metric of a pair the same value."""
    return write_csv(path, [{'name': f'{stem}.png', **{m: v for m in BAR_METRICS}} for stem, v in values.items()])


def test_fractions_use_only_the_validated_pairs(tmp_path):
    reference = reference_means(list(csv.DictReader(per_image(tmp_path / 'r.csv', {'a': 2.0, 'b': 4.0, 'c': 100.0})
                                                    .open())), ['a', 'b'])
    assert reference == {m: 3.0 for m in BAR_METRICS}            # c, not validated, does not count
    log = [{'step': '100', 'val_loss': '0.5', **{m: '1.5' for m in BAR_METRICS}},
           {'step': '200', 'val_loss': '0.4', **{m: '3.0' for m in BAR_METRICS}, 'SF': '1.5'}]
    rows = step_rows(log, reference)
    assert rows[0]['ratios']['EN'] == pytest.approx(0.5) and rows[0]['mean'] == pytest.approx(0.5)
    assert rows[1]['ratios']['SF'] == pytest.approx(0.5) and rows[1]['lowest'] == 'SF'
    assert rows[1]['mean'] == pytest.approx((7 + 0.5) / 8)
    assert best_step(rows) == 200 and best_step([]) is None


def test_command_writes_the_table_with_the_start_as_step_zero(tmp_path, capsys):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'val_names.txt').write_text('a\nb\nc\n')
    write_csv(run / 'val_log.csv', [{'step': 50, 'val_loss': 1.0, **{m: 2.0 for m in BAR_METRICS}}])
    reference = per_image(tmp_path / 'ref.csv', {'a': 4.0, 'b': 4.0, 'c': 0.0})
    start = per_image(tmp_path / 'start.csv', {'a': 3.0, 'b': 3.0, 'c': 0.0})
    main(['--run', str(run), '--pairs', '2', '--reference', str(reference), '--start', str(start),
          '--out', str(tmp_path / 'out' / 'table.md')])
    table = capsys.readouterr().out
    assert '| 0 | - | 0.750 |' in table and '**0.750**' in table and '| 50 | 1 | 0.500 |' in table
    saved = json.loads((tmp_path / 'out' / 'table.json').read_text())
    assert saved['best_step'] == 0 and saved['pairs'] == ['a', 'b']


@pytest.mark.parametrize('pairs, missing, message', [
    (4, None, 'fewer than --pairs 4'), (3, 'c', 'no row for 1 of the validated pairs')])
def test_bad_input_is_named(tmp_path, capsys, pairs, missing, message):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'val_names.txt').write_text('a\nb\nc\n')
    write_csv(run / 'val_log.csv', [{'step': 50, 'val_loss': 1.0, **{m: 2.0 for m in BAR_METRICS}}])
    values = {s: 1.0 for s in 'abc' if s != missing}
    with pytest.raises(SystemExit) as exit_info:
        main(['--run', str(run), '--pairs', str(pairs), '--reference', str(per_image(tmp_path / 'r.csv', values))])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
