"""`fusion-ros`: the package's command line (fuse folders, evaluate, ...)."""

import argparse
import sys
from typing import Optional

from fusion_ros import __version__
from fusion_ros.cli import bag_command, calibrate, demo, engine_command, evaluate, fuse


def build_parser() -> argparse.ArgumentParser:
    """Top-level parser with one sub-command per module."""
    parser = argparse.ArgumentParser(prog='fusion-ros', description='Infrared + visible image fusion tools.')
    parser.add_argument('--version', action='version', version=f'fusion-ros {__version__}')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for module in (fuse, evaluate, demo, bag_command, engine_command, calibrate):
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Parse arguments and dispatch; returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return args.func(args)
