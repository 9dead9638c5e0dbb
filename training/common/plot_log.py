"""
Plot training runs' loss and validation curves to one PNG (one row per run, e.g. per stage).

    python -m training.common.plot_log --run runs/seafusion --out models/seafusion_training.png
    python -m training.common.plot_log --run runs/sgfusion runs/sgfusion_fused --out models/sgfusion_training.png

Every loss column of train_log.csv is drawn (they differ per method: l_int/l_texture, l_rec/l_bce,
l_sem, rec_loss/fusion_loss/r_loss), ``std_*`` columns (ReFusion's weight-map spread) on a second
axis, and the validation loss with Qabf, VIF and, for joint runs, the segmenter's mIoU.
"""

import argparse
import csv
from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


NOT_LOSSES = ('step', 'lr', 'seconds', 'stage', 'phase')
SPREAD_PREFIX = 'std_'   # ReFusion: spatial std of P's weight maps, on their own (linear) axis
VAL_METRICS = (('Qabf', 's--', 'gray'), ('VIF', '^--', 'black'), ('miou_fused', 'd:', 'tab:red'),
               ('miou_visible', 'v:', 'tab:blue'), ('miou_infrared', 'x:', 'tab:orange'))


def _number(text: str) -> float:
    """Float of a CSV cell; empty or non-numeric cells (a phase name, a missing l_sem) become NaN."""
    try:
        return float(text)
    except ValueError:
        return float('nan')


def read_columns(path: Path) -> dict[str, list[float]]:
    """Read a CSV log into float columns."""
    with Path(path).open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [_number(r[key]) for r in rows] for key in rows[0]} if rows else {}


def _plot_row(run: Path, left, right) -> None:
    """Training loss terms on the left, validation loss and metrics on the right."""
    train, val = read_columns(run / 'train_log.csv'), read_columns(run / 'val_log.csv')
    for key in (k for k in train if k not in NOT_LOSSES and not k.startswith(SPREAD_PREFIX)):
        left.plot(train['step'], train[key], label=key, linewidth=0.8)
    left.set(xlabel='step', ylabel='loss (batch)', title=f'{run.name}: training', yscale='log')
    handles = left.get_legend_handles_labels()[0]
    spreads = [k for k in train if k.startswith(SPREAD_PREFIX)]
    if spreads:
        twin = left.twinx()
        for key, colour in zip(spreads, ('tab:purple', 'tab:brown')):
            twin.plot(train['step'], train[key], ':', label=key, color=colour, linewidth=1.0)
        twin.set_ylabel('spatial std of the weight maps')
        handles += twin.get_legend_handles_labels()[0]
    left.legend(handles=handles, fontsize='small')
    right.plot(val['step'], val['val_loss'], 'o-', label='val loss')
    right.set(xlabel='step', ylabel='validation loss', title=f'{run.name}: held-out pairs')
    twin = right.twinx()
    for key, style, colour in VAL_METRICS:
        if key in val:
            twin.plot(val['step'], val[key], style, label=key, color=colour)
    twin.set_ylabel('metric')
    handles = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    right.legend(handles=handles, loc='center right', fontsize='small')


def plot_runs(runs: list[Path], out: Path) -> None:
    """One row of two panels per run."""
    fig = Figure(figsize=(11, 4 * len(runs)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(runs), 2, squeeze=False)
    for run, (left, right) in zip(runs, axes):
        _plot_row(Path(run), left, right)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', required=True, type=Path, nargs='+', help='one or more run folders')
    parser.add_argument('--out', required=True, type=Path)
    args = parser.parse_args(argv)
    plot_runs(args.run, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
