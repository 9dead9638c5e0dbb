"""
Build the TensorRT engines of every shipped model, on the machine that will run them.

    python -m training.build_engines [--models models] [--precision fp16 fp32] [--timing-cache PATH] ...

Each end-to-end uint8 graph in the folder (the graphs the node runs) gets one plan per precision,
through the same builder and cache policy as the node and `fusion-ros build-engine`; plans whose
cache key still matches are reused. A summary table (build seconds, plan size) is printed and
written to <models>/engines.json.
"""

import argparse
import json
from pathlib import Path
from typing import Optional

from fusion_ros.model_card import card_path_for, load_card
from fusion_ros.tensorrt.builder import BuildSettings, default_plan_path, ensure_engine
from fusion_ros.tensorrt.engine_cache import DEFAULT_PROFILE, Profile, sidecar_path


def shipped_models(folder: Path) -> list[Path]:
    """ONNX files with a card of graph kind uint8 (the node's models), sorted."""
    return sorted(p for p in Path(folder).glob('*.onnx')
                  if card_path_for(p).is_file() and load_card(p, verify=False).graph == 'uint8')


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=Path, default=Path('models'))
    parser.add_argument('--precision', nargs='+', choices=('fp16', 'fp32'), default=['fp16'])
    parser.add_argument('--profile', type=int, nargs=6,
                        default=(*DEFAULT_PROFILE.min_hw, *DEFAULT_PROFILE.opt_hw, *DEFAULT_PROFILE.max_hw),
                        metavar='N', help='min H W, opt H W, max H W')
    parser.add_argument('--workspace-mb', type=int, default=1024)
    parser.add_argument('--timing-cache', type=Path, help='shared timing cache file (speeds up later builds)')
    args = parser.parse_args(argv)
    p = args.profile
    profile = Profile((p[0], p[1]), (p[2], p[3]), (p[4], p[5]))
    rows = []
    for model in shipped_models(args.models):
        for precision in args.precision:
            settings = BuildSettings(precision, profile, args.workspace_mb, args.timing_cache)
            plan, decision = ensure_engine(model, default_plan_path(model, precision), settings)
            side = json.loads(sidecar_path(plan).read_text())
            rows.append({'model': model.name, 'precision': precision, 'plan': plan.name, 'action': decision.action,
                         'build_seconds': side.get('build_seconds'), 'megabytes': round(plan.stat().st_size / 1e6, 2),
                         'tensorrt': side['tensorrt_version'], 'gpu': side['gpu_name']})
    for row in rows:
        print(f"{row['model']:28s} {row['precision']}  {row['action']:5s}  {row['build_seconds']} s  "
              f"{row['megabytes']} MB  ({row['gpu']}, TensorRT {row['tensorrt']})")
    (Path(args.models) / 'engines.json').write_text(json.dumps(rows, indent=2) + '\n')


if __name__ == '__main__':
    main()
