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


def image_grid(rows: list[tuple[str, list[np.ndarray]]], columns: list[str], path: Path,
               tile_width: float = 2.4) -> None:
    """
    Save a grid of images, one row per scene (its name on the left) and one column per input or method.

    Gray and BGR uint8 images are both shown as they would be displayed (BGR is converted to RGB).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = rows[0][1][0].shape[:2]
    figure = Figure(figsize=(tile_width * len(columns), tile_width * height / width * len(rows) + 0.4), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            if image.ndim == 3:
                ax.imshow(image[..., ::-1])
            else:
                ax.imshow(image, cmap='gray', vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    figure.subplots_adjust(left=0.03, right=0.995, top=0.96, bottom=0.005, wspace=0.02, hspace=0.02)
    figure.savefig(path, format='png')
