"""
Plot a training run's loss and validation curves to one PNG.

    python -m training.plot_log --run runs/seafusion --out models/seafusion_training.png
"""

import argparse
import csv
from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def read_columns(path: Path) -> dict[str, list[float]]:
    """Read a CSV log into float columns."""
    with Path(path).open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(r[key]) for r in rows] for key in rows[0]} if rows else {}


def plot_run(run: Path, out: Path) -> None:
    """Training loss terms on the left, validation loss and Qabf/VIF on the right."""
    train, val = read_columns(run / 'train_log.csv'), read_columns(run / 'val_log.csv')
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for key in ('loss', 'l_int', 'l_texture'):
        left.plot(train['step'], train[key], label=key, linewidth=0.8)
    left.set(xlabel='step', ylabel='content loss (batch)', title='training', yscale='log')
    left.legend()
    right.plot(val['step'], val['val_loss'], 'o-', label='val content loss')
    right.set(xlabel='step', ylabel='content loss', title='held-out validation pairs')
    twin = right.twinx()
    for key, style in (('Qabf', 's--'), ('VIF', '^--')):
        twin.plot(val['step'], val[key], style, label=key, color='gray' if key == 'Qabf' else 'black')
    twin.set_ylabel('metric (12 pairs)')
    handles = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    right.legend(handles=handles, loc='center right')
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', required=True, type=Path)
    parser.add_argument('--out', required=True, type=Path)
    args = parser.parse_args(argv)
    plot_run(args.run, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
