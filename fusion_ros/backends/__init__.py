"""Inference backends behind one interface; heavy imports happen only when a backend is chosen."""

from pathlib import Path
from typing import Callable

from fusion_ros.backends.base import Backend
from fusion_ros.model_card import ModelCard


def _onnxruntime(model_path: Path, card: ModelCard, threads: int) -> Backend:
    from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(model_path, card, threads=threads)


BACKENDS: dict[str, Callable[[Path, ModelCard, int], Backend]] = {'onnxruntime': _onnxruntime}


def create_backend(name: str, model_path: Path, card: ModelCard, threads: int = 0) -> Backend:
    """Instantiate a backend by name; raises ValueError listing the known ones."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f'unknown backend {name!r}; available: {", ".join(sorted(BACKENDS))}') from None
    return factory(Path(model_path), card, threads)
