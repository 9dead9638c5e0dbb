"""
Which fused image does a training loss prefer? Each model's output on held-out pairs, scored by one objective.

    python -m training.evaluation.loss_of_fused --config training/configs/coconet_continue.yaml \
        --run models/coconet_run --models models/seafusion.onnx models/coconet.onnx --pairs 12 --out /tmp/loss_of_fused

A run that stops improving on the fusion metrics may have reached what its network can do, or what its
loss asks for. The second is measurable without training: fuse the same held-out pairs with every
model (the runtime pipeline, as the node does), put each fused luma into the config's objective as
if the network had produced it, and compare. When a better-scoring model's output has a *higher*
loss than the trained model's own, more steps on that loss lead away from it, and the metrics will
not follow the loss down. The pixel max and mean of the sources are scored too, as fixed points.

Only objectives whose network output is the fused luma itself (SeAFusion's content loss, CoCoNet's
stage 1) can score an image this way; validation-mode losses are used (no autograd), as
training.common.train's in-training validation does.
"""

import argparse
import json
from pathlib import Path
import tempfile
from typing import Optional

import numpy as np
import torch

from fusion_ros.cli.fuse import fuse_folders
from fusion_ros.core.color import bgr_to_ycrcb, to_unit
from fusion_ros.core.imageio import read_image
from fusion_ros.core.pipeline import FusionPipeline
from training.common.config import load_config, TrainConfig
from training.common.data import IGNORE, load_sources, Pair, split_holdout
from training.common.objectives import Objective, objective_for
from training.evaluation.validate import link_holdout


def held_out(config: TrainConfig, run: Path, count: int) -> list[Pair]:
    """Return the first ``count`` of the run's held-out pairs (the pairs its in-training validation scores)."""
    names = (Path(run) / 'val_names.txt').read_text().split()[:count]
    _, val = split_holdout(load_sources([s for s in config.sources if s.name == config.val_source]),
                           config.val_source, config.val_count, config.seed)
    chosen = [p for p in val if p.name in set(names)]
    if len(chosen) != len(names):
        raise ValueError(f'{run}/val_names.txt names pairs that the config {config.val_source!r} does not hold out')
    return chosen


def luma(image_bgr: np.ndarray) -> np.ndarray:
    """Y of a fused BGR (or gray) image in [0, 1], the plane the networks fuse."""
    bgr = image_bgr if image_bgr.ndim == 3 else np.repeat(image_bgr[..., None], 3, axis=2)
    return bgr_to_ycrcb(to_unit(bgr))[0]


def objective_loss(objective: Objective, config: TrainConfig, fused_y: np.ndarray, pair: Pair) -> dict[str, float]:
    """Score one fused luma against the pair's sources: the validation loss and its parts."""
    as_tensor = (lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None])
    mask = pair.mask if pair.mask is not None else np.full(pair.ir.shape, IGNORE, np.uint8)
    with torch.no_grad():
        loss, parts = objective.loss(as_tensor(fused_y), as_tensor(pair.vis_y), as_tensor(pair.ir),
                                     torch.from_numpy(mask)[None], config)
    return {'loss': float(loss), **parts}


def mean_losses(config: TrainConfig, outputs: dict[str, dict[str, np.ndarray]], pairs: list[Pair]) -> dict[str, dict]:
    """Mean loss and parts per method over the pairs; ``outputs[method][pair name]`` is a fused luma."""
    objective = objective_for(config)
    table = {}
    for method, by_name in outputs.items():
        rows = [objective_loss(objective, config, by_name[p.name], p) for p in pairs]
        table[method] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return table


def fused_outputs(models: list[Path], run: Path, config_path: Path, names: list[str], work: Path) -> dict:
    """Fuse the held-out pairs with each model through the runtime pipeline; {label: {name: fused luma}}."""
    pairs = link_holdout(run, config_path, work / 'pairs')
    outputs = {}
    for model in models:
        pipeline = FusionPipeline.from_model(model)
        try:
            folder = work / model.stem
            fuse_folders(pipeline, pairs / 'ir', pairs / 'vi', folder, progress=False)
        finally:
            pipeline.close()
        outputs[model.stem] = {n: luma(read_image(next(folder.glob(f'{n}.*')))) for n in names}
    return outputs


def markdown(table: dict[str, dict], pairs: int, objective: str) -> str:
    """Format the table, lowest loss first."""
    parts = [k for k in next(iter(table.values())) if k != 'loss']
    lines = [f'Objective `{objective}` on {pairs} held-out pairs (lower is what the loss prefers)', '',
             '| output | loss | ' + ' | '.join(parts) + ' |', '|---|---:|' + '---:|' * len(parts)]
    for method, row in sorted(table.items(), key=lambda item: item[1]['loss']):
        lines.append(f"| {method} | {row['loss']:.4g} | " + ' | '.join(f'{row[k]:.4g}' for k in parts) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[list[str]] = None) -> None:
    """Fuse, score, print the table; with --out keep the fused images and write loss_of_fused.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True, type=Path, help='training config whose objective scores')
    parser.add_argument('--run', required=True, type=Path, help='run folder with val_names.txt')
    parser.add_argument('--models', required=True, type=Path, nargs='+', help='exported models with cards')
    parser.add_argument('--pairs', type=int, default=12, help='first N held-out pairs (default: 12)')
    parser.add_argument('--out', type=Path, help='keep fused images and the table here')
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f'--pairs must be at least 1, got {args.pairs}')
    config = load_config(args.config)
    try:
        pairs = held_out(config, args.run, args.pairs)
        with tempfile.TemporaryDirectory() as scratch:
            work = args.out or Path(scratch)
            outputs = fused_outputs(args.models, args.run, args.config, [p.name for p in pairs], work)
        outputs['pixel max'] = {p.name: np.maximum(p.ir, p.vis_y) for p in pairs}
        outputs['pixel mean'] = {p.name: (p.ir + p.vis_y) / 2 for p in pairs}
        table = mean_losses(config, outputs, pairs)
    except (OSError, ValueError) as err:
        parser.exit(2, f'loss_of_fused: error: {err}\n')
    text = markdown(table, len(pairs), config.objective or config.method)
    print(text, end='')
    if args.out:
        (args.out / 'loss_of_fused.md').write_text(text)
        (args.out / 'loss_of_fused.json').write_text(json.dumps(
            {'config': str(args.config), 'pairs': [p.name for p in pairs], 'losses': table}, indent=2) + '\n')


if __name__ == '__main__':
    main()
