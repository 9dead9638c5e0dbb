"""
What a training run's own log says about its cost: steps and wall time, for the model card.

The ``seconds`` column of ``train_log.csv`` counts from the start of the process that wrote the row,
so it restarts at every ``--resume``; the wall time of a run is the sum of each segment's last value.
A model can stand on earlier runs (``init_from``: CoCoNet's stage 2 on stage 1; ``vgg_weights``: the
gray VGG-19 trained here), so the card lists every run in the chain, the first one first.
"""

import csv
from pathlib import Path
from typing import Optional

from fusion_ros.core.model_card import load_card
from training.common.checkpoint import load_checkpoint


def logged_wall_seconds(seconds: list[float]) -> float:
    """Sum the segments of a ``seconds`` column that restarts at each resume (a drop starts a new segment)."""
    total, last = 0.0, 0.0
    for value in seconds:
        if value < last:
            total += last
        last = value
    return round(total + last, 1)


def run_summary(run_dir: Path) -> Optional[dict]:
    """Return the last logged step and the logged wall time of a run folder (None without a train_log.csv)."""
    log = Path(run_dir) / 'train_log.csv'
    if not log.is_file():
        return None
    with log.open(newline='') as handle:
        rows = [r for r in csv.DictReader(handle) if r.get('seconds')]
    if not rows:
        return None
    wall = logged_wall_seconds([float(r['seconds']) for r in rows])
    return {'run': str(run_dir), 'last_logged_step': int(float(rows[-1]['step'])), 'wall_s': wall,
            'wall_min': round(wall / 60, 1)}


def run_chain(config: dict, run_dir: Path) -> list[dict]:
    """
    Summaries of the runs a model stands on (vgg_weights, init_from, recursively) and of run_dir, oldest first.

    A run that continues a shipped model (``init_from=models/x.onnx``) stands on the runs that model's
    card lists: their folders are gone (runs/ is not kept), the card still has them.
    """
    chain: list[dict] = []
    for key in ('vgg_weights', 'init_from'):
        source = config.get(key)
        if key == 'init_from' and source and Path(source).suffix == '.onnx' and Path(source).is_file():
            runs = load_card(Path(source), verify=False).provenance.get('training', {}).get('runs', [])
            chain += [r for r in runs if r not in chain]
        elif source and Path(source).parent != Path(run_dir) and Path(source).parent.is_dir():
            parent = Path(source).parent
            chain += [s for s in run_chain(_config_of(parent), parent) if s not in chain]
    own = run_summary(run_dir)
    return chain + ([own] if own else [])


def _config_of(run_dir: Path) -> dict:
    """Return the config a run folder was trained with (from its last.pt), or {} when there is none."""
    checkpoint = Path(run_dir) / 'last.pt'
    if not checkpoint.is_file():
        return {}
    return load_checkpoint(checkpoint).get('config', {})
