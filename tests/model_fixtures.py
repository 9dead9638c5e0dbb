"""Build a small exported model once per test session (seeded, untrained: parity does not need training)."""

from pathlib import Path

import torch

from training.checkpoint import save_checkpoint
from training.config import TrainConfig, config_to_dict
from training.export import export
from training.models.seafusion import SeAFusion

PAIRS = Path(__file__).parent / 'data' / 'pairs'


def export_seeded_model(folder: Path, sample_limit: int = 2) -> tuple[Path, Path]:
    """Return (uint8 graph, float graph) paths of a seeded SeAFusion exported into folder."""
    torch.manual_seed(0)
    net = SeAFusion()
    ckpt = folder / 'seeded.pt'
    save_checkpoint(ckpt, {'model': net.state_dict(), 'config': config_to_dict(TrainConfig()), 'step': 0,
                           'config_path': 'seeded-test-model'})
    return export(ckpt, folder / 'seafusion.onnx', PAIRS, sample_limit=sample_limit)
