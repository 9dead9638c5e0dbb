"""Argument groups that several `fusion-ros` sub-commands declare alike."""

import argparse
from pathlib import Path


def add_folder_arguments(parser: argparse.ArgumentParser, **helps: str) -> None:
    """
    Add one required folder option per keyword (``ir='folder of ...'`` gives ``--ir DIR``).

    The folder commands (fuse, evaluate) name their inputs and output the same way, so a user who
    learned one knows the other; declaring them here keeps the two from drifting apart.
    """
    for name, text in helps.items():
        parser.add_argument(f'--{name}', required=True, type=Path, help=text)
