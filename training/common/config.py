"""
Typed training configuration loaded from YAML.

Unknown keys and wrongly typed values raise instead of being silently ignored,
so a typo in a config file cannot train a different model than intended.
"""

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml


@dataclass
class DataSource:
    """One paired folder set: same file stem in both folders means a registered pair."""

    name: str
    ir: str
    vis: str
    masks: str = ''                 # folder of ground-truth masks (same stems); '' when the source has none
    mask_format: str = 'yolo_boxes'  # see fusion_ros.evaluation.mask_io.MASK_FORMATS
    teacher: str = ''               # folder of a teacher's fused Y (16-bit PNG, same stems); '' = none


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved into every checkpoint."""

    method: str = 'seafusion'
    objective: str = ''             # '' = the method's own (training.common.objectives); e.g. sgfusion_fused_decoder
    sources: list[DataSource] = field(default_factory=list)
    val_source: str = 'msrs'        # held-out pairs are drawn from this source only
    val_count: int = 48             # pairs held out for validation
    val_eval_count: int = 12        # of those, pairs fused at full size at each validation
    seed: int = 0
    crop: int = 96
    batch_size: int = 8
    max_steps: int = 4000
    lr: float = 1e-3
    min_lr: float = 1e-5
    texture_weight: float = 10.0
    saliency_weight: float = 1.0    # SGFusion: weight of the BCE term beside reconstruction
    # Target-aware SeAFusion (objective seafusion_target, training.common.losses.target_losses)
    target_follow_weight: float = 1.0   # |F - better source| on targets and their ring
    target_keep_weight: float = 1.0     # hinge on lost target contrast
    target_ring: int = 8                # ring width in pixels around the target pixels
    target_crops: float = 0.0           # fraction of each batch's crops drawn around a labelled target
    log_every: int = 25
    val_every: int = 500
    ckpt_every: int = 250
    threads: int = 0                # 0: leave torch's default
    init_from: str = ''             # start from this checkpoint's weights (train) / stage 0's fusion net (semantic)
    # SeAFusion joint adaptive training (training.seafusion.semantic); ignored by training.common.train
    stages: int = 4                 # semantic weight of stage i is i * semantic_weight
    semantic_weight: float = 1.0
    fusion_steps: int = 500         # fusion-net steps per stage
    seg_steps: int = 300            # segmenter steps per stage
    seg_batch_size: int = 8
    seg_lr: float = 0.01            # SGD; heads run at 10x
    seg_ohem: bool = True           # OHEM cross-entropy (the paper's); False: plain cross-entropy
    seg_class_weights: list[float] = field(default_factory=list)   # per-class CE weights; [] = none
    # ReFusion meta-learning (training.refusion.train); ignored elsewhere
    inner_lr: float = 0.01          # length (L2, parameter space) of the inner normalised SGD step giving F'
    meta_every: int = 1             # P's meta update every k-th step (F and R step every step)
    proposal: str = 'conv'          # P's architecture: conv (dilated convs) | restormer (TDFusion-style)
    proposal_lr: float = 0.0        # P's Adam learning rate; 0 = F's
    proposal_init: str = 'zero'     # P's last conv: zero (flat maps at the start) | random (PyTorch's default)
    inner_step: str = 'normalised'  # F's differentiable step: normalised (length inner_lr) | sgd (F's lr)
    outer_step: str = 'adam'        # P's update: adam | maxnorm (phi - lr g / max|g|)
    meta_phase: int = 0             # 0: interleaved; n: n P-only steps (2 outer batches each), then n F+R steps
    swap_sources: bool = False      # also feed every pair with IR and visible swapped
    grad_ramp: bool = False         # gradient term of P's loss weighted (step + 1) / max_steps
    # CoCoNet (objectives coconet, coconet_contrastive; training.coconet.objective)
    vgg_weights: str = ''           # VGG-19 state dict, torchvision keys (ImageNet, or training.coconet.vgg's)
    contrast_weight: float = 1.0    # weight of the coupled contrastive loss in stage 2
    # Distillation (objective realtime_distill, training.realtime.distill)
    teacher: str = ''               # teacher graph (float ONNX) that fills the sources' teacher folders
    distill_weight: float = 10.0    # weight of L1(student, teacher) beside the content loss
    out_dir: str = 'runs/seafusion'


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Check a YAML value against the default's type (ints may stand for floats)."""
    if isinstance(default, bool) or default is None:
        ok = isinstance(value, type(default)) if default is not None else True
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise TypeError(f'config key {name!r} must be {type(default).__name__}, got {value!r}')
    return value


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig, rejecting unknown keys and mistyped values."""
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise KeyError(f'unknown config key(s): {", ".join(unknown)}')
    defaults = TrainConfig()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == 'sources':
            values[key] = [DataSource(**src) for src in value]
        else:
            values[key] = _coerce(key, getattr(defaults, key), value)
    return TrainConfig(**values)


def load_config(path: Path, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config and apply ``key=value`` overrides given on the command line."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides:
        key, sep, text = item.partition('=')
        if not sep:
            raise ValueError(f'override {item!r} is not of the form key=value')
        raw[key] = yaml.safe_load(text)
    return config_from_dict(raw)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain-dict form for checkpoints, logs and model cards."""
    return asdict(config)


def parse_command_line(description: str, argv: Optional[list[str]] = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Parse the shared CLI of the training entry points: --config, --resume and key=value overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True, help='YAML training config')
    parser.add_argument('--resume', action='store_true', help='continue from out_dir/last.pt if it exists')
    parser.add_argument('--vgg-weights', metavar='FILE',
                        help='CoCoNet: torchvision-format VGG-19 state dict (same as vgg_weights=FILE)')
    parser.add_argument('overrides', nargs='*', help='key=value config overrides')
    args = parser.parse_args(argv)
    overrides = args.overrides + ([f'vgg_weights={args.vgg_weights}'] if args.vgg_weights else [])
    return load_config(args.config, overrides), args
