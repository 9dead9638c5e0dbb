"""
Engine cache policy: when a serialized TensorRT plan may be reused.

A plan is tied to the TensorRT version, the GPU (name and compute capability),
the exact ONNX graph it was built from (file name and sha256: the fp32 graph, or
the model's fp16 graph for precision fp16), the precision and the optimisation
profile. Each plan lives beside a sidecar JSON, ``<plan>.json``, holding those
fields (plus build time); a plan is loaded only when every key field matches the
wanted one, and otherwise rebuilt, or refused when rebuilds are disabled, with a
message naming every field that differs and both values. Settings that change
how fast a plan is but not what it computes (workspace limit, timing cache) are
not in the key. Pure Python: no TensorRT needed to decide or to test.
"""

from dataclasses import asdict, dataclass, fields
import json
from pathlib import Path
from typing import Any, Optional

PRECISIONS = ('fp32', 'fp16')


@dataclass(frozen=True)
class Profile:
    """Optimisation profile over image height and width (min <= opt <= max)."""

    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]

    def validate(self) -> None:
        """Raise ValueError naming the dimension that breaks min <= opt <= max or is not positive."""
        for axis, name in ((0, 'height'), (1, 'width')):
            low, opt, high = self.min_hw[axis], self.opt_hw[axis], self.max_hw[axis]
            if not 0 < low <= opt <= high:
                raise ValueError(f'profile {name} must satisfy 0 < min <= opt <= max, got {low}, {opt}, {high}')


# The default optimisation profile: 320x240 up to 1920x1080, tuned for 640x480 cameras.
DEFAULT_PROFILE = Profile((240, 320), (480, 640), (1080, 1920))


@dataclass(frozen=True)
class EngineKey:
    """Everything a plan depends on; two plans with equal keys are interchangeable."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    graph: str              # file name of the ONNX graph built (seafusion.onnx or seafusion_fp16.onnx)
    onnx_sha256: str        # of that graph
    precision: str
    profile: Profile

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got {self.precision!r}')
        self.profile.validate()


def key_to_dict(key: EngineKey, build_seconds: Optional[float] = None) -> dict[str, Any]:
    """Sidecar JSON content."""
    data = asdict(key)
    data['profile'] = {k: list(v) for k, v in data['profile'].items()}
    if build_seconds is not None:
        data['build_seconds'] = round(build_seconds, 2)
    return data


def key_from_dict(data: dict[str, Any]) -> EngineKey:
    """Parse a sidecar, naming what is missing."""
    try:
        profile = Profile(**{k: tuple(v) for k, v in data['profile'].items()})
        return EngineKey(**{f.name: data[f.name] for f in fields(EngineKey) if f.name != 'profile'}, profile=profile)
    except (KeyError, TypeError) as err:
        raise ValueError(f'engine sidecar is missing or has a malformed field: {err}') from None


def sidecar_path(plan: Path) -> Path:
    """
    Return the JSON beside a plan: ``<plan file name>.json``.

    Never ``<plan stem>.json``: a plan named after its model (models/seafusion.engine)
    would then overwrite the model card models/seafusion.json.
    """
    plan = Path(plan)
    return plan.with_name(plan.name + '.json')


def key_differences(cached: EngineKey, wanted: EngineKey) -> list[str]:
    """One line per differing field: 'field: cached X, wanted Y'."""
    return [f'{f.name}: cached {getattr(cached, f.name)!r}, wanted {getattr(wanted, f.name)!r}'
            for f in fields(EngineKey) if getattr(cached, f.name) != getattr(wanted, f.name)]


@dataclass(frozen=True)
class CacheDecision:
    """What to do with a plan path: 'load' or 'build', and why."""

    action: str
    reason: str


class EngineRebuildRefused(RuntimeError):
    """The cached plan does not match and rebuilding is disabled."""


def refuse_or_build(reason: str, allow_rebuild: bool) -> CacheDecision:
    """Build for this reason, or raise naming it when rebuilds are disabled."""
    if not allow_rebuild:
        raise EngineRebuildRefused(f'{reason}; rebuilding is disabled (allow_rebuild=false): build it with '
                                   '`fusion-ros build-engine` on this machine or enable rebuilds')
    return CacheDecision('build', reason)


def decide(plan: Path, wanted: EngineKey, allow_rebuild: bool = True, force: bool = False) -> CacheDecision:
    """Load a matching plan; otherwise (or when forced) build it, or raise if rebuilds are disabled."""
    plan = Path(plan)
    side = sidecar_path(plan)
    if force:
        return CacheDecision('build', f'rebuild of {plan.name} forced')
    if not plan.is_file():
        reason = f'no engine at {plan}'
    elif not side.is_file():
        reason = f'engine {plan} has no sidecar {side.name}, so its build settings are unknown'
    else:
        try:
            cached = key_from_dict(json.loads(side.read_text()))
        except (ValueError, json.JSONDecodeError) as err:
            cached, reason = None, f'sidecar {side} is unreadable: {err}'
        if cached is not None:
            diffs = key_differences(cached, wanted)
            if not diffs:
                return CacheDecision('load', f'engine {plan.name} matches (TensorRT {wanted.tensorrt_version}, '
                                             f'{wanted.gpu_name}, {wanted.precision})')
            reason = f'engine {plan.name} was built for other settings: ' + '; '.join(diffs)
    return refuse_or_build(reason, allow_rebuild)
