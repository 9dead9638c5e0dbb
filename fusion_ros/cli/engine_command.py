"""
`fusion-ros build-engine`: build (or reuse) the TensorRT plan of a model on this machine.

    fusion-ros build-engine --model models/seafusion.onnx [--precision fp16] \
        [--profile-min 240 320] [--profile-opt 480 640] [--profile-max 1080 1920] \
        [--workspace-mb 1024] [--timing-cache engines/timing.cache] [--out PLAN] [--no-rebuild | --force]

Same builder, cache directory and cache policy as the node's configure step
(fusion_ros.tensorrt.builder), so a plan built here is the one the node loads when given the
same settings. fp16 builds the model's fp16 graph (<model>_fp16.onnx), fp32 the model itself.
Run it on the target (a plan only runs on the TensorRT version and GPU that built it).
"""

import argparse
from pathlib import Path
import sys

from fusion_ros.tensorrt.engine_cache import DEFAULT_PROFILE


def add_parser(subparsers) -> None:
    """Register `build-engine`."""
    parser = subparsers.add_parser('build-engine', help='build or reuse a TensorRT engine for a model',
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, type=Path, help='ONNX model with its card')
    parser.add_argument('--out', type=Path, help='plan path (default: the node\'s, '
                        '$ROS_HOME/fusion_ros/engines/<graph>-<sha256 start>.engine)')
    parser.add_argument('--precision', choices=('fp16', 'fp32'), default='fp16')
    for name, default in (('min', DEFAULT_PROFILE.min_hw), ('opt', DEFAULT_PROFILE.opt_hw),
                          ('max', DEFAULT_PROFILE.max_hw)):
        parser.add_argument(f'--profile-{name}', type=int, nargs=2, default=default, metavar=('H', 'W'),
                            help=f'{name} image size of the optimisation profile (default {default[0]} {default[1]})')
    parser.add_argument('--workspace-mb', type=int, default=1024, help='builder workspace limit, MiB')
    parser.add_argument('--timing-cache', type=Path, help='timing cache file, read and updated')
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument('--no-rebuild', action='store_true',
                        help='fail instead of rebuilding when a cached plan does not match')
    policy.add_argument('--force', action='store_true', help='rebuild even when the cached plan matches')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build or load; errors are printed and give exit code 2."""
    from fusion_ros.tensorrt.builder import BuildSettings, ensure_engine
    from fusion_ros.tensorrt.engine_cache import Profile
    try:
        profile = Profile(tuple(args.profile_min), tuple(args.profile_opt), tuple(args.profile_max))
        profile.validate()
        settings = BuildSettings(args.precision, profile, args.workspace_mb, args.timing_cache)
        plan, _, _ = ensure_engine(args.model, args.out, settings, allow_rebuild=not args.no_rebuild,
                                   force=args.force)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
        print(f'fusion-ros build-engine: error: {err}', file=sys.stderr)
        return 2
    print(f'engine ready: {plan}')
    return 0
