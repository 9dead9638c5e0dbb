"""Report figures drawn on an Agg canvas: no display needed and matplotlib's global backend is left alone."""

import math
from pathlib import Path

import numpy as np


def plot_cdfs(per_method: dict[str, list[float]], quantity: str, path: Path) -> None:
    """Empirical CDF of one quantity, all methods overlaid: shows spread and outliers that a mean hides."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for method, values in per_method.items():
        finite = np.sort(np.array([v for v in values if math.isfinite(v)], dtype=np.float64))
        if finite.size:
            fraction = np.arange(0, finite.size + 1) / finite.size  # starts at 0 so the first jump is visible
            axes.step(np.concatenate([finite[:1], finite]), fraction, where='post', label=f'{method} (n={finite.size})')
    axes.set_xlabel(quantity)
    axes.set_ylabel('fraction ≤ value')
    axes.set_ylim(0, 1.02)
    axes.set_title(f'{quantity}: empirical CDF')
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc='best', fontsize='small')
    figure.tight_layout()
    figure.savefig(path, format='png')
