"""The ament linters every ROS package runs (ament_copyright is not obtainable from PyPI)."""

from pathlib import Path

from ament_flake8.main import main_with_errors as flake8_main
from ament_pep257.main import main as pep257_main

REPO = Path(__file__).resolve().parent.parent
SOURCES = [str(REPO / p) for p in ('fusion_ros', 'training', 'launch', 'benchmarks', 'setup.py') if (REPO / p).exists()]


def test_flake8():
    rc, errors = flake8_main(argv=['--config', str(REPO / 'setup.cfg'), *SOURCES, str(REPO / 'tests')])
    assert rc == 0, f'{len(errors)} flake8 error(s):\n' + '\n'.join(errors)


def test_pep257():
    assert pep257_main(argv=[*SOURCES, '--add-ignore', 'D100', 'D104']) == 0, 'pep257 errors, see output above'
