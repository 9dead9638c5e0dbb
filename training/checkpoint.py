"""Self-describing checkpoints: weights, optimiser, step, config and RNG state, saved atomically."""

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temp file and rename, so a crash mid-write never leaves a corrupt checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load on CPU; checkpoints hold numpy RNG state, so weights_only loading is not possible."""
    if not Path(path).is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    return torch.load(path, map_location='cpu', weights_only=False)
