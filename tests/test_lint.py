"""The ament linters every ROS package runs (ament_copyright is not obtainable from PyPI)."""

from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent
SOURCES = [str(REPO / p) for p in ('fusion_ros', 'training', 'launch', 'benchmarks', 'setup.py') if (REPO / p).exists()]


def run_linter(module: str, *args: str) -> subprocess.CompletedProcess:
    # A separate process: flake8 forks workers, and forking this test process (which has run DDS
    # threads in other tests) can crash the child.
    return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_flake8():
    result = run_linter('ament_flake8.main', '--config', str(REPO / 'setup.cfg'), *SOURCES, str(REPO / 'tests'))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_pep257():
    result = run_linter('ament_pep257.main', *SOURCES, '--add-ignore', 'D100', 'D104')
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
