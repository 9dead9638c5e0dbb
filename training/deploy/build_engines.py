"""
Build the TensorRT engines of every shipped model, on the machine that will run them.

    python -m training.deploy.build_engines [--models models] [--precision fp16 fp32] [--out-dir DIR] \
        [--timing-cache PATH] [--force] ...

Each end-to-end uint8 graph in the folder (the graphs the node runs) gets one plan per precision,
through the same builder, cache directory and cache policy as the node and `fusion-ros
build-engine` (so the node finds them); plans whose cache key still matches are reused. A model
that fails is reported and the others are still built. A summary table (action, build seconds,
plan size, or the error) is printed and written to <out-dir>/engines.json; the exit status is 1
when any model failed.
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Any, Optional

from fusion_ros.core.model_card import card_path_for, load_card
from fusion_ros.tensorrt.builder import BuildSettings, ensure_engine
from fusion_ros.tensorrt.engine_cache import DEFAULT_PROFILE, Profile, sidecar_path
from fusion_ros.tensorrt.plan_store import engine_dir


def shipped_models(folder: Path) -> list[Path]:
    """ONNX files with a card of graph kind uint8 (the node's models), sorted."""
    return sorted(p for p in Path(folder).glob('*.onnx')
                  if card_path_for(p).is_file() and load_card(p, verify=False).graph == 'uint8')


def build_one(model: Path, settings: BuildSettings, out_dir: Path, force: bool) -> dict[str, Any]:
    """Build or reuse one plan; the summary row, with the error instead when it fails."""
    row: dict[str, Any] = {'model': model.name, 'precision': settings.precision}
    try:
        plan, decision, _ = ensure_engine(model, None, settings, force=force, plan_dir=out_dir)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
        return {**row, 'action': 'failed', 'error': str(err)}
    side = json.loads(sidecar_path(plan).read_text())
    return {**row, 'graph': side['graph'], 'plan': str(plan), 'action': decision.action,
            'build_seconds': side.get('build_seconds'), 'megabytes': round(plan.stat().st_size / 1e6, 2),
            'tensorrt': side['tensorrt_version'], 'gpu': side['gpu_name']}


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point; returns 1 when any model failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=Path, default=Path('models'))
    parser.add_argument('--precision', nargs='+', choices=('fp16', 'fp32'), default=['fp16'])
    parser.add_argument('--out-dir', type=Path, help='where the plans go (default: the node\'s, '
                        '$ROS_HOME/fusion_ros/engines)')
    parser.add_argument('--profile', type=int, nargs=6,
                        default=(*DEFAULT_PROFILE.min_hw, *DEFAULT_PROFILE.opt_hw, *DEFAULT_PROFILE.max_hw),
                        metavar='N', help='min H W, opt H W, max H W')
    parser.add_argument('--workspace-mb', type=int, default=1024)
    parser.add_argument('--timing-cache', type=Path, help='shared timing cache file (speeds up later builds)')
    parser.add_argument('--force', action='store_true', help='rebuild plans whose cache key matches')
    args = parser.parse_args(argv)
    p = args.profile
    profile = Profile((p[0], p[1]), (p[2], p[3]), (p[4], p[5]))
    out_dir = args.out_dir or engine_dir()
    rows = [build_one(model, BuildSettings(precision, profile, args.workspace_mb, args.timing_cache), out_dir,
                      args.force)
            for model in shipped_models(args.models) for precision in args.precision]
    for row in rows:
        if row['action'] == 'failed':
            print(f"{row['model']:28s} {row['precision']}  FAILED: {row['error']}", file=sys.stderr)
        else:
            print(f"{row['model']:28s} {row['precision']}  {row['action']:5s}  {row['build_seconds']} s  "
                  f"{row['megabytes']} MB  ({row['gpu']}, TensorRT {row['tensorrt']})")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'engines.json').write_text(json.dumps(rows, indent=2) + '\n')
    return 1 if any(row['action'] == 'failed' for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
