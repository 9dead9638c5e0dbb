"""
Held-out metrics against training steps, as fractions of a reference model on the same pairs.

    python -m training.evaluation.step_table --run runs/coconet_continue --pairs 6 \
        --reference models/comparison/per_image.csv --start models/comparison/per_image_coconet.csv \
        --out models/coconet_run/continued/step_table.md

A run's in-training validation (``val_log.csv``) scores the first ``val_eval_count`` of its held-out
pairs (``val_names.txt``) every ``val_every`` steps. Its absolute numbers cannot be set beside the
48-pair comparison, and a few pairs' means move with the scenes they happen to hold; dividing by a
reference model's scores on exactly those pairs (a per-image CSV that ``training.evaluation.compare``
wrote) gives the same "fraction of SeAFusion" the issues' bars are stated in, per step. The table says
when the metrics stopped improving, which is what decides how long a run goes on. ``--start`` adds the
model the run continued from as step 0 (its per-image CSV from the comparison), so a continuation
that never beats its start is plain to see.
"""

import argparse
import csv
import json
from pathlib import Path
from typing import Optional

from training.evaluation.compare import BAR_METRICS, relative_scores


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file, or a clear error naming the file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f'{path} not found')
    with Path(path).open(newline='') as handle:
        return list(csv.DictReader(handle))


def reference_means(per_image: list[dict[str, str]], stems: list[str],
                    metrics: tuple[str, ...] = BAR_METRICS) -> dict[str, float]:
    """Average the reference's scores of each metric over exactly these pairs (names compared without extension)."""
    by_stem = {Path(row['name']).stem: row for row in per_image}
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise ValueError(f'the reference has no row for {len(missing)} of the validated pairs: {missing[:5]}')
    return {m: sum(float(by_stem[s][m]) for s in stems) / len(stems) for m in metrics}


def step_row(step: int, val_loss: Optional[float], scores: dict[str, float], reference: dict[str, float]) -> dict:
    """Give the step, its validation loss (None where not logged) and relative_scores' ratios, mean, lowest."""
    relative = relative_scores({'run': scores, 'reference': reference}, 'reference')['run']
    return {'step': step, 'val_loss': val_loss, **relative}


def step_rows(val_log: list[dict[str, str]], reference: dict[str, float]) -> list[dict]:
    """One row per validated step of the log."""
    return [step_row(int(e['step']), float(e['val_loss']), {m: float(e[m]) for m in reference}, reference)
            for e in val_log]


def best_step(rows: list[dict]) -> Optional[int]:
    """
    Return the step with the highest mean fraction (bold in the table), None for an empty log.

    On a few validation pairs neighbouring steps differ by noise; which step to export is the
    caller's choice (the trainer keeps best.pt by the held-out loss).
    """
    return max(rows, key=lambda r: r['mean'])['step'] if rows else None


def markdown(rows: list[dict], pairs: int, reference: str) -> str:
    """Format the rows as markdown, the best step's mean in bold."""
    metrics = list(rows[0]['ratios']) if rows else list(BAR_METRICS)
    best = best_step(rows)
    lines = [f'Held-out metrics on the first {pairs} held-out pairs as fractions of `{reference}` on the same pairs',
             '',
             '| step | val loss | ' + ' | '.join(metrics) + ' | mean | lowest |',
             '|---:|---:|' + '---:|' * (len(metrics) + 2)]
    for row in rows:
        mean = f"{row['mean']:.3f}"
        loss = '-' if row['val_loss'] is None else f"{row['val_loss']:.4g}"
        lines.append(f"| {row['step']} | {loss} | "
                     + ' | '.join(f"{row['ratios'][m]:.3f}" for m in metrics)
                     + f" | {f'**{mean}**' if row['step'] == best else mean} | {row['lowest']} |")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[list[str]] = None) -> None:
    """Print the table; with --out also write it and a JSON beside it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', required=True, type=Path, help='run folder with val_log.csv and val_names.txt')
    parser.add_argument('--pairs', required=True, type=int, help="the run's val_eval_count (pairs per validation)")
    parser.add_argument('--reference', required=True, type=Path,
                        help='per-image CSV of the reference model (training.evaluation.compare wrote it)')
    parser.add_argument('--names', type=Path, help='held-out pair list (default: RUN/val_names.txt)')
    parser.add_argument('--start', type=Path,
                        help='per-image CSV of the model the run started from, shown as step 0')
    parser.add_argument('--out', type=Path, help='write the table here (.md) and its rows beside it (.json)')
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f'--pairs must be at least 1, got {args.pairs}')
    try:
        names = args.names or args.run / 'val_names.txt'
        stems = names.read_text().split()[:args.pairs]
        if len(stems) < args.pairs:
            raise ValueError(f'{names} lists {len(stems)} pairs, fewer than --pairs {args.pairs}')
        reference = reference_means(read_rows(args.reference), stems)
        rows = step_rows(read_rows(args.run / 'val_log.csv'), reference)
        if args.start:
            rows.insert(0, step_row(0, None, reference_means(read_rows(args.start), stems), reference))
    except (OSError, ValueError, KeyError) as err:
        parser.exit(2, f'step_table: error: {err}\n')
    table = markdown(rows, args.pairs, str(args.reference))
    print(table, end='')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        args.out.with_suffix('.json').write_text(json.dumps({'pairs': stems, 'reference': str(args.reference),
                                                             'best_step': best_step(rows), 'rows': rows},
                                                            indent=2) + '\n')


if __name__ == '__main__':
    main()
