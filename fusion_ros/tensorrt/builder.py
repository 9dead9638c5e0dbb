"""
ONNX -> TensorRT plan, written against the TensorRT 10 Python API (tensorrt.md section 1).

One implementation, used by the node (in lifecycle configure), by
``fusion-ros build-engine`` and by ``python -m training.build_engines``.
``ensure_engine`` applies the cache policy of engine_cache: a plan beside its
sidecar is loaded when every key field matches, otherwise rebuilt (or refused).
The ``trt`` and ``cuda`` modules are parameters so that the CI can run this
code against a test double; on a vehicle they are the real tensorrt and cudart.
"""

from dataclasses import dataclass
import json
import os
from pathlib import Path
import time
from typing import Any, Callable, Optional

from fusion_ros.model_card import load_card, ModelCard, sha256_of
from fusion_ros.tensorrt.cuda_memory import CudaRuntime
from fusion_ros.tensorrt.engine_cache import (CacheDecision, decide, DEFAULT_PROFILE, EngineKey, key_to_dict,
                                              Profile, sidecar_path)


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX file or build a plan from it."""


@dataclass(frozen=True)
class BuildSettings:
    """What a build is asked for (config/fusion.yaml `engine.*` parameters)."""

    precision: str = 'fp16'
    profile: Profile = DEFAULT_PROFILE
    workspace_mb: int = 1024
    timing_cache: Optional[Path] = None


def import_tensorrt() -> Any:
    """Import tensorrt, with the install hint a user needs when it is missing."""
    try:
        import tensorrt
    except ImportError:
        raise ImportError('backend "tensorrt" needs the TensorRT Python bindings: on x86 `pip install tensorrt` '
                          '(matching your CUDA), on a Jetson the JetPack package python3-libnvinfer and a venv made '
                          'with --system-site-packages; or choose backend "torch" or "onnxruntime"') from None
    return tensorrt


def profile_shapes(card: ModelCard, profile: Profile) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) shape of every graph input, from its layout in the card and the H x W profile."""
    def shape(layout: str, hw: tuple[int, int]) -> tuple[int, ...]:
        dims = {'N': 1, 'C': 1, 'H': hw[0], 'W': hw[1]}
        if layout == 'HWC':
            return hw[0], hw[1], 3
        return tuple(dims[axis] for axis in layout)

    return {t.name: tuple(shape(t.layout, hw) for hw in (profile.min_hw, profile.opt_hw, profile.max_hw))
            for t in card.inputs}


def engine_key(trt: Any, cuda: CudaRuntime, onnx_path: Path, settings: BuildSettings) -> EngineKey:
    """Return the cache key of a plan built here, now, from this ONNX file with these settings."""
    gpu, capability = cuda.device_identity()
    return EngineKey(trt.__version__, gpu, capability, sha256_of(onnx_path), settings.precision, settings.profile)


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    """Parse the ONNX file into the network; every parser error goes into the exception."""
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes(), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f'TensorRT cannot parse {onnx_path}: ' + '; '.join(errors or ['no parser message']))


def _precision(trt: Any, config: Any, precision: str) -> None:
    """FP16 through the weakly typed builder flag of TensorRT 10; TensorRT 11 removed it."""
    if precision == 'fp16':
        if not hasattr(trt.BuilderFlag, 'FP16'):
            raise EngineBuildError(f'TensorRT {trt.__version__} has no FP16 builder flag (removed in 11.x): convert '
                                   'the ONNX model to fp16 with ModelOpt AutoCast (keep_io_types) and build it as fp32')
        config.set_flag(trt.BuilderFlag.FP16)


def _timing_cache(config: Any, path: Optional[Path]) -> None:
    """Attach a timing cache read from path (empty when new); a mismatched cache is ignored, not fatal."""
    previous = Path(path).read_bytes() if path and Path(path).is_file() else b''
    cache = config.create_timing_cache(previous)
    config.set_timing_cache(cache, True)


def build_plan(trt: Any, onnx_path: Path, card: ModelCard, settings: BuildSettings,
               log: Callable[[str], None] = print) -> bytes:
    """Parse, configure (workspace, precision, profile, timing cache) and build; returns the plan bytes."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)    # weakly typed, so the FP16 flag may lower an fp32 graph
    _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    _precision(trt, config, settings.precision)
    _timing_cache(config, settings.timing_cache)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(card, settings.profile).items():
        profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(f'TensorRT rejected the optimisation profile {settings.profile} for {onnx_path}')
    log(f'building {settings.precision} TensorRT engine for {Path(onnx_path).name} (this can take minutes)')
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f'TensorRT failed to build {onnx_path} (see its log above for the reason)')
    if settings.timing_cache:
        _write_atomic(Path(settings.timing_cache), bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves half a plan that looks valid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)


def default_plan_path(onnx_path: Path, precision: str) -> Path:
    """Return where the plan of a model goes by default: beside it, named by precision."""
    return Path(onnx_path).with_name(f'{Path(onnx_path).stem}_{precision}.engine')


def ensure_engine(onnx_path: Path, plan_path: Optional[Path] = None, settings: BuildSettings = BuildSettings(),
                  allow_rebuild: bool = True, trt: Any = None, cuda: Optional[CudaRuntime] = None,
                  log: Callable[[str], None] = print) -> tuple[Path, CacheDecision]:
    """Return a plan for onnx_path that matches this machine and settings, building it when needed."""
    trt = trt or import_tensorrt()
    cuda = cuda or CudaRuntime()
    card = load_card(onnx_path)
    plan_path = Path(plan_path) if plan_path else default_plan_path(onnx_path, settings.precision)
    wanted = engine_key(trt, cuda, onnx_path, settings)
    decision = decide(plan_path, wanted, allow_rebuild)
    log(f'{decision.action} engine: {decision.reason}')
    if decision.action == 'build':
        started = time.monotonic()
        plan = build_plan(trt, onnx_path, card, settings, log)
        seconds = time.monotonic() - started
        _write_atomic(plan_path, plan)
        sidecar_path(plan_path).write_text(json.dumps(key_to_dict(wanted, seconds), indent=2) + '\n')
        log(f'wrote {plan_path} ({len(plan) / 1e6:.1f} MB) in {seconds:.1f} s')
    return plan_path, decision
