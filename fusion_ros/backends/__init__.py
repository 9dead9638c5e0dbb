"""Inference backends behind one interface; heavy imports happen only when a backend is chosen."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from fusion_ros.backends.base import Backend
from fusion_ros.core.model_card import ModelCard
from fusion_ros.tensorrt.engine_cache import DEFAULT_PROFILE, Profile


@dataclass(frozen=True)
class BackendOptions:
    """
    Settings of every backend in one place (node parameters and CLI flags map onto these).

    ``threads`` is for the CPU runtimes; ``precision`` for TensorRT and torch on CUDA; the
    ``engine_*`` fields for TensorRT's build and cache (see fusion_ros.tensorrt.builder).
    """

    threads: int = 0
    precision: str = 'fp16'
    device: str = 'auto'
    cuda_graphs: bool = True
    engine_path: Optional[Path] = None
    engine_profile: Profile = DEFAULT_PROFILE
    engine_workspace_mb: int = 1024
    engine_timing_cache: Optional[Path] = None
    engine_allow_rebuild: bool = True


def _onnxruntime(model_path: Path, card: ModelCard, options: BackendOptions) -> Backend:
    from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(model_path, card, threads=options.threads)


def _tensorrt(model_path: Path, card: ModelCard, options: BackendOptions) -> Backend:
    """Build or reuse the cached plan (this is where configure may spend minutes), then load it."""
    from fusion_ros.backends.tensorrt_backend import TensorRTBackend
    from fusion_ros.tensorrt.builder import BuildSettings, ensure_engine
    settings = BuildSettings(options.precision, options.engine_profile, options.engine_workspace_mb,
                             options.engine_timing_cache)
    plan, _, engine = ensure_engine(model_path, options.engine_path, settings, options.engine_allow_rebuild)
    return TensorRTBackend(plan, card, engine=engine)


def _torch(model_path: Path, card: ModelCard, options: BackendOptions) -> Backend:
    from fusion_ros.backends.torch_backend import TorchBackend
    return TorchBackend(model_path, card, options.threads, options.precision, options.device, options.cuda_graphs)


BACKENDS: dict[str, Callable[[Path, ModelCard, BackendOptions], Backend]] = {
    'onnxruntime': _onnxruntime, 'tensorrt': _tensorrt, 'torch': _torch}


def create_backend(name: str, model_path: Path, card: ModelCard, threads: int = 0,
                   options: Optional[BackendOptions] = None) -> Backend:
    """Instantiate a backend by name; raises ValueError listing the known ones."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f'unknown backend {name!r}; available: {", ".join(sorted(BACKENDS))}') from None
    options = options or BackendOptions(threads=threads)
    return factory(Path(model_path), card, options)
