"""
ONNX -> TensorRT plan, written against the TensorRT 10 and 11 Python APIs (tensorrt.md sections 1 and 10.x -> 11.x).

One implementation, used by the node (in lifecycle configure), by
``fusion-ros build-engine`` and by ``python -m training.deploy.build_engines``.

One build path for every version: a strongly typed network, so tensor types come
from the graph. Precision fp32 builds the model's graph; fp16 builds the model's
fp16 graph (``<model>_fp16.onnx``, named and pinned by sha256 in the model card,
validated by training.deploy.export, derived here by fp16_graph), never a builder flag: TensorRT 11 has no weak typing
and no FP16 flag, and on 10.x the same graph gives the same engine.

``ensure_engine`` applies the cache policy of engine_cache under the lock of
plan_store: a plan whose sidecar key matches is loaded (and rebuilt if it does not
deserialize), otherwise rebuilt, or refused. The ``trt`` and ``cuda`` modules are
parameters so that CI can run this code against a test double; on a vehicle they
are the real tensorrt and cudart.
"""

from dataclasses import dataclass
import os
from pathlib import Path
import time
from typing import Any, Callable, Optional
import weakref

from fusion_ros.core.model_card import load_card, ModelCard, sha256_of
from fusion_ros.tensorrt.cuda_memory import CudaRuntime
from fusion_ros.tensorrt.engine_cache import (CacheDecision, decide, DEFAULT_PROFILE, EngineKey, key_to_dict,
                                              Profile, refuse_or_build, sidecar_path)
from fusion_ros.tensorrt.plan_store import build_lock, default_plan_path, engine_dir, store_plan, write_atomic


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
        raise ImportError('backend "tensorrt" needs the TensorRT Python bindings: on x86 '
                          '`pip install -r requirements/gpu-x86-cuda12.txt`, on a Jetson the JetPack package '
                          'python3-libnvinfer and a venv made with --system-site-packages '
                          '(requirements/jetson-jp6.txt); or choose backend "torch" or "onnxruntime"') from None
    return tensorrt


_LOGGERS: 'weakref.WeakKeyDictionary[Any, Any]' = weakref.WeakKeyDictionary()
_RUNTIMES: 'weakref.WeakKeyDictionary[Any, Any]' = weakref.WeakKeyDictionary()


def trt_logger(trt: Any) -> Any:
    """
    Return the process's one TensorRT logger.

    TensorRT keeps a global pointer to the first logger it is given; a builder or runtime
    created later with another logger only gets a warning and still logs to the first. So
    every builder, parser and runtime of this process shares this one.
    """
    logger = _LOGGERS.get(trt)
    if logger is None:
        logger = _LOGGERS[trt] = trt.Logger(trt.Logger.WARNING)
    return logger


def deserialize(trt: Any, plan_path: Path) -> Any:
    """Deserialize a plan file; None when this TensorRT cannot load it (version, GPU, damaged file)."""
    runtime = _RUNTIMES.get(trt)
    if runtime is None:     # one runtime per process, kept alive as long as its engines
        runtime = _RUNTIMES[trt] = trt.Runtime(trt_logger(trt))
    return runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())


def graph_for(onnx_path: Path, card: ModelCard, precision: str, folder: Optional[Path] = None) -> Path:
    """
    Return the ONNX graph a precision builds: the model for fp32, its card-pinned fp16 graph for fp16.

    The fp16 graph is the file beside the model when one is there (exports before issue 19 shipped
    it), else derived from the model into folder (default: the engine folder) by fp16_graph.
    """
    onnx_path = Path(onnx_path)
    if precision != 'fp16':
        return onnx_path
    fp16 = card.provenance.get('fp16')
    if not fp16:
        raise EngineBuildError(f'{onnx_path.name} has no fp16 graph (its card names none): re-export it with '
                               'python -m training.deploy.export, which validates one, or use precision fp32')
    path = onnx_path.with_name(fp16['onnx'])
    if not path.is_file():
        try:
            from fusion_ros.tensorrt.fp16_graph import derive_fp16
        except ImportError as err:
            raise EngineBuildError(f'the fp16 graph of {onnx_path.name} is derived from it with the onnx package, '
                                   f'which is missing ({err}): pip install onnx (requirements/gpu-*.txt) or use '
                                   'precision fp32') from None
        try:
            return derive_fp16(onnx_path, card, Path(folder or engine_dir()))
        except ValueError as err:
            raise EngineBuildError(str(err)) from None
    if sha256_of(path) != fp16['sha256']:
        raise EngineBuildError(f'{path} does not match the sha256 the card of {onnx_path.name} pins; re-export it')
    return path


def profile_shapes(card: ModelCard, profile: Profile) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) shape of every graph input, from its layout in the card and the H x W profile."""
    def shape(layout: str, hw: tuple[int, int]) -> tuple[int, ...]:
        dims = {'N': 1, 'C': 1, 'H': hw[0], 'W': hw[1]}
        if layout == 'HWC':
            return hw[0], hw[1], 3
        return tuple(dims[axis] for axis in layout)

    return {t.name: tuple(shape(t.layout, hw) for hw in (profile.min_hw, profile.opt_hw, profile.max_hw))
            for t in card.inputs}


def engine_key(trt: Any, cuda: CudaRuntime, graph: Path, settings: BuildSettings) -> EngineKey:
    """Return the cache key of a plan built here, now, from this ONNX graph with these settings."""
    gpu, capability = cuda.device_identity()
    return EngineKey(trt.__version__, gpu, capability, Path(graph).name, sha256_of(graph), settings.precision,
                     settings.profile)


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    """Parse the ONNX file into the network; every parser error goes into the exception."""
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes(), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f'TensorRT cannot parse {onnx_path}: ' + '; '.join(errors or ['no parser message']))


def _attach_timing_cache(config: Any, path: Optional[Path], log: Callable[[str], None]) -> None:
    """
    Attach the timing cache read from path, strictly (ignore_mismatch=False).

    A cache written on another GPU or TensorRT version is documented to cause functional
    bugs when forced in, so a refused one is replaced by a fresh cache (saved over it after
    the build).
    """
    previous = Path(path).read_bytes() if Path(path).is_file() else b''
    try:
        attached = config.set_timing_cache(config.create_timing_cache(previous), False)
    except (RuntimeError, TypeError, ValueError):      # unreadable bytes
        attached = False
    if attached:
        return
    log(f'timing cache {path} was written by another GPU or TensorRT version (or is damaged): '
        'starting a fresh one, saved over it after this build')
    if not config.set_timing_cache(config.create_timing_cache(b''), False):
        raise EngineBuildError('TensorRT refused a fresh, empty timing cache')


def build_plan(trt: Any, graph: Path, card: ModelCard, settings: BuildSettings,
               log: Callable[[str], None] = print) -> bytes:
    """Parse (strongly typed), configure (workspace, profile, timing cache) and build; returns the plan bytes."""
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    _parse(trt, network, logger, graph)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    if settings.timing_cache:
        _attach_timing_cache(config, settings.timing_cache, log)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(card, settings.profile).items():
        profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(f'TensorRT rejected the optimisation profile {settings.profile} for {graph}')
    log(f'building {settings.precision} TensorRT engine from {Path(graph).name} (this can take minutes)')
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f'TensorRT failed to build {graph} (see its log above for the reason)')
    if settings.timing_cache:
        try:
            write_atomic(Path(settings.timing_cache), bytes(memoryview(config.get_timing_cache().serialize())))
        except OSError as err:      # the plan is fine; only later builds lose the speed-up
            log(f'could not save the timing cache {settings.timing_cache}: {err}')
    return bytes(memoryview(plan))


def _writable_folder(plan_path: Path) -> None:
    """Fail with the fix, before any lock or build, when the plan's folder cannot be written."""
    try:
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(plan_path.parent, os.W_OK)
    except OSError as err:
        writable, reason = False, str(err)
    else:
        reason = 'not writable'
    if not writable:
        raise EngineBuildError(f'cannot write the TensorRT plan {plan_path} ({reason}): set engine.path '
                               '(fusion-ros build-engine --out) to a file in a writable folder')


def _build_and_store(trt: Any, graph: Path, card: ModelCard, settings: BuildSettings, plan_path: Path,
                     wanted: EngineKey, log: Callable[[str], None]) -> None:
    """Build, then replace plan and sidecar (plan_store's crash-safe order)."""
    started = time.monotonic()
    plan = build_plan(trt, graph, card, settings, log)
    seconds = time.monotonic() - started
    try:
        store_plan(plan_path, plan, sidecar_path(plan_path), key_to_dict(wanted, seconds))
    except OSError as err:
        raise EngineBuildError(f'cannot write the TensorRT plan {plan_path}: {err}') from None
    log(f'wrote {plan_path} ({len(plan) / 1e6:.1f} MB) in {seconds:.1f} s')


def ensure_engine(onnx_path: Path, plan_path: Optional[Path] = None, settings: BuildSettings = BuildSettings(),
                  allow_rebuild: bool = True, force: bool = False, trt: Any = None,
                  cuda: Optional[CudaRuntime] = None, log: Callable[[str], None] = print,
                  plan_dir: Optional[Path] = None) -> tuple[Path, CacheDecision, Any]:
    """
    Return (plan path, what was done, deserialized engine) for onnx_path on this machine with these settings.

    Without plan_path the plan gets plan_store's default name, in plan_dir or the cache
    directory. A matching plan that TensorRT cannot deserialize is rebuilt (or refused when
    rebuilds are disabled).
    """
    trt = trt or import_tensorrt()
    cuda = cuda or CudaRuntime()
    card = load_card(onnx_path)
    graph = graph_for(onnx_path, card, settings.precision, Path(plan_path).parent if plan_path else plan_dir)
    wanted = engine_key(trt, cuda, graph, settings)
    plan_path = Path(plan_path) if plan_path else default_plan_path(graph, wanted.onnx_sha256, plan_dir)
    _writable_folder(plan_path)
    with build_lock(plan_path, log):
        decision = decide(plan_path, wanted, allow_rebuild, force)
        log(f'{decision.action} engine: {decision.reason}')
        if decision.action == 'load':
            engine = deserialize(trt, plan_path)
            if engine is not None:
                return plan_path, decision, engine
            decision = refuse_or_build(f'engine {plan_path.name} matches its sidecar but TensorRT '
                                       f'{trt.__version__} cannot deserialize it', allow_rebuild)
            log(f'build engine: {decision.reason}')
        _build_and_store(trt, graph, card, settings, plan_path, wanted, log)
        engine = deserialize(trt, plan_path)
    if engine is None:
        raise EngineBuildError(f'TensorRT {trt.__version__} cannot deserialize the plan it has just built: {plan_path}')
    return plan_path, decision, engine
