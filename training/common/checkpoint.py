"""Self-describing checkpoints: weights, optimiser, step, config and RNG state, saved atomically."""

import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from fusion_ros.backends.torch_backend import exported_weights
from fusion_ros.core.model_card import load_card
from training.common.config import parse_command_line


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temp file and rename, so a crash mid-write never leaves a corrupt checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """
    Load on CPU; checkpoints hold numpy RNG state, so weights_only loading is not possible.

    An exported model (``.onnx`` with its card) gives its weights as a checkpoint's 'method' and
    'model' entries, so ``init_from`` can start from a shipped model, which has no .pt of its own.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if Path(path).suffix == '.onnx':
        return exported_weights(Path(path), load_card(Path(path)))
    return torch.load(path, map_location='cpu', weights_only=False)


def run_resumable(make_trainer: Callable[..., Any], description: str, argv: Optional[list[str]] = None) -> None:
    """
    Shared entry point of trainers that keep their whole state in one object (state/restore/run).

    Parses --config/--resume/overrides, sets the thread count, restores out_dir/last.pt when
    --resume is given and the file exists, and runs.
    """
    config, args = parse_command_line(description, argv)
    if config.threads:
        torch.set_num_threads(config.threads)
    trainer = make_trainer(config, args.config)
    last = Path(config.out_dir) / 'last.pt'
    if args.resume and last.exists():
        trainer.restore(load_checkpoint(last))
    trainer.run()
