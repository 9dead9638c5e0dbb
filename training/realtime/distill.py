"""
Distillation of a fusion network into the real-time student (issue 13): teacher images and the objective.

    python -m training.realtime.distill --config training/configs/realtime.yaml [--threads 2]
    python -m training.realtime.distill --config training/configs/realtime.yaml --compare models/realtime_float.onnx

Running the teacher on every crop of every step would cost more than training the student, so
its fused Y is computed once per whole image (the runtime's view: no crop borders) and stored as
a 16-bit PNG in the folder each source names as ``teacher``; training.common.data crops it with the
sources. The command above fills the folders ahead of time; the ``realtime_distill`` objective
fills whatever is missing before training starts, so the training command alone also works.

``--compare`` measures how close a float graph comes to the teacher on the held-out pairs (mean
absolute difference of fused Y in grey levels, beside the pixel max of the sources).

Objective: the content loss of methods.md on the student plus ``distill_weight`` * mean
|student - teacher|. Validation inside training.common.train sees no teacher images (it fuses whole
held-out pairs), so its ``val_loss`` is the content loss alone.
"""

import argparse
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from fusion_ros.core.imageio import pair_folders, write_image_atomic
from fusion_ros.core.pipeline import FusionPipeline
from training.common.config import DataSource, parse_command_line, TrainConfig
from training.common.data import load_pair, load_sources, split_holdout
from training.common.losses import content_loss

Loss = tuple[torch.Tensor, dict[str, float]]


def teacher_y(pipeline: FusionPipeline, vis_y: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Run the teacher: fused Y (H, W) in [0, 1] of float planes (H, W) in [0, 1]."""
    out = pipeline.backend.run({'visible_y': vis_y[None, None].astype(np.float32),
                                'ir': ir[None, None].astype(np.float32)})
    return out['fused_y'][0, 0]


def to_uint16(plane: np.ndarray) -> np.ndarray:
    """[0, 1] float plane as 16-bit counts (the teacher's output at 1/65535 resolution)."""
    return np.round(np.clip(plane, 0.0, 1.0) * 65535.0).astype(np.uint16)


def missing_teacher_images(source: DataSource) -> list[tuple[str, Path, Path]]:
    """(name, ir path, visible path) of the source's pairs that have no teacher image yet."""
    folder = Path(source.teacher)
    return [(ir.stem, ir, vis) for ir, vis in pair_folders(source.ir, source.vis).pairs
            if not (folder / f'{ir.stem}.png').is_file()]


def fill_teacher_folders(config: TrainConfig, threads: int = 0, log: Callable[[str], None] = print) -> int:
    """
    Write the teacher's fused Y for every pair of every source that names a teacher folder; returns how many.

    Files already there are kept (a rerun after an interruption only does the rest). The teacher is
    a float graph with a card (``config.teacher``); it sees the same planes training.common.data loads.
    """
    sources = [s for s in config.sources if s.teacher]
    if not sources:
        raise ValueError('distillation needs teacher images: give each source a teacher folder')
    todo = [(s, item) for s in sources for item in missing_teacher_images(s)]
    if not todo:
        return 0
    if not config.teacher:
        raise ValueError(f'{len(todo)} teacher images are missing and no teacher graph is configured (teacher=...)')
    pipeline = FusionPipeline.from_model(Path(config.teacher), threads=threads)
    if pipeline.card.graph != 'float':
        raise ValueError(f'teacher {config.teacher} is a {pipeline.card.graph!r} graph; give its float graph '
                         '(visible_y, ir -> fused_y), e.g. models/seafusion_float.onnx')
    log(f'teacher {config.teacher}: fusing {len(todo)} pairs into the teacher folders')
    for k, (source, (name, ir_path, vis_path)) in enumerate(todo, 1):
        folder = Path(source.teacher)
        if (folder / f'{name}.png').is_file():   # another process (a second filler, a DDP rank) wrote it meanwhile
            continue
        pair = load_pair(name, source.name, ir_path, vis_path)
        folder.mkdir(parents=True, exist_ok=True)
        write_image_atomic(folder / f'{name}.png', to_uint16(teacher_y(pipeline, pair.vis_y, pair.ir)))
        if k % 50 == 0:
            log(f'  {k}/{len(todo)}')
    pipeline.close()
    return len(todo)


def teacher_distance(config: TrainConfig, model: Path, threads: int = 0) -> dict[str, float]:
    """Mean |Y - teacher Y| in grey levels over the held-out pairs, for `model` (a float graph) and the pixel max."""
    sources = [s for s in config.sources if s.name == config.val_source]
    _, held_out = split_holdout(load_sources(sources), config.val_source, config.val_count, config.seed)
    pipeline = FusionPipeline.from_model(model, threads=threads)
    try:
        if pipeline.card.graph != 'float':
            raise ValueError(f'{model} is a {pipeline.card.graph!r} graph; compare its float twin')
        ours = [np.abs(teacher_y(pipeline, p.vis_y, p.ir) - p.teacher).mean() for p in held_out]
    finally:
        pipeline.close()
    pixel_max = [np.abs(np.maximum(p.vis_y, p.ir) - p.teacher).mean() for p in held_out]
    return {'pairs': len(held_out), 'model': round(float(np.mean(ours)) * 255, 3),
            'pixel_max': round(float(np.mean(pixel_max)) * 255, 3)}


class DistillTrainer(nn.Module):
    """Runs the student on channel 0 of the visible batch and passes channel 1 (the teacher's Y) through."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        teacher = vis[:, 1:2] if vis.shape[1] == 2 else None
        return self.model(vis[:, :1], ir), teacher


def distill_loss(outputs: tuple[torch.Tensor, Optional[torch.Tensor]], vis: torch.Tensor, ir: torch.Tensor,
                 masks: torch.Tensor, config: TrainConfig) -> Loss:
    """Content loss + distill_weight * mean |student - teacher|; content alone where there is no teacher."""
    student, teacher = outputs
    total, parts = content_loss(student, vis[:, :1], ir, config.texture_weight)
    if teacher is None:
        return total, parts
    l_distill = (student - teacher).abs().mean()
    return total + config.distill_weight * l_distill, {**parts, 'l_distill': float(l_distill.detach())}


def objective_parts(config: TrainConfig) -> tuple[Callable[[nn.Module], nn.Module], Callable[..., Loss]]:
    """Fill the teacher folders; return the train module and loss of the ``realtime_distill`` objective."""
    fill_teacher_folders(config, threads=config.threads)
    return DistillTrainer, distill_loss


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point: fill the teacher folders a config names (and compare a model with the teacher)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--compare', type=Path, help='float graph to compare with the teacher on the held-out pairs')
    args, rest = parser.parse_known_args(argv)
    config, _ = parse_command_line(__doc__, rest)
    written = fill_teacher_folders(config, threads=args.threads)
    print(f'{written} teacher images written')
    if args.compare:
        distance = teacher_distance(config, args.compare, args.threads)
        print(f'{distance["pairs"]} held-out pairs, mean |Y - teacher Y| in grey levels: {args.compare.name} '
              f'{distance["model"]}, pixel max {distance["pixel_max"]}')


if __name__ == '__main__':
    main()
