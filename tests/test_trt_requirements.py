"""
The pinned GPU requirement files resolve for their targets, without installing (pip --dry-run against PyPI).

Each file is resolved for its target interpreter and platform with binary wheels only, so a pin
that has no wheel for, say, cp310 aarch64 fails here and not on the Jetson. The TensorRT
libraries of the x86 file (tensorrt-cu12-libs) are published on NVIDIA's index only, which this
machine cannot reach: that one line is left out of the resolution and checked instead to pin the
same version as the bindings, a version the conformance tests import. Needs PyPI (CI has it).
"""

import json
from pathlib import Path
import re
import subprocess
import sys

import pytest

from tests import trt_bindings

REQUIREMENTS = Path(__file__).resolve().parent.parent / 'requirements'
NVIDIA_ONLY = '# NVIDIA index only'
TARGETS = [
    ('gpu-x86-cuda12.txt', '3.11', ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')),
    ('gpu-x86-cuda12.txt', '3.12', ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')),
    ('jetson-jp6.txt', '3.10', ('manylinux_2_35_aarch64', 'manylinux_2_28_aarch64', 'manylinux_2_17_aarch64',
                                'manylinux2014_aarch64', 'linux_aarch64')),
]


def pypi_lines(path: Path) -> list[str]:
    """The requirement lines pip can resolve from PyPI: no options, no NVIDIA-only pins, no comments."""
    return [line.split('#')[0].strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(('#', '-')) and NVIDIA_ONLY not in line]


def normalized(name: str) -> str:
    """PEP 503 project name (tensorrt_cu12_bindings and tensorrt-cu12-bindings are one project)."""
    return re.sub(r'[-_.]+', '-', name).lower()


@pytest.mark.parametrize('name, python, platforms', TARGETS, ids=[f'{t[0]}-py{t[1]}' for t in TARGETS])
def test_requirement_file_resolves_for_its_target(name, python, platforms, tmp_path):
    wanted = pypi_lines(REQUIREMENTS / name)
    assert all(re.fullmatch(r'[\w.-]+==[\w.]+', line) for line in wanted), 'every requirement is pinned exactly'
    command = [sys.executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed', '--only-binary', ':all:',
               '--python-version', python, '--target', str(tmp_path / 'target'), '--report', str(tmp_path / 'r.json'),
               '--quiet', *[arg for platform in platforms for arg in ('--platform', platform)], *wanted]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    installed = {normalized(i['metadata']['name']): i['metadata']['version']
                 for i in json.loads((tmp_path / 'r.json').read_text())['install']}
    for line in wanted:
        package, version = line.split('==')
        assert installed[normalized(package)] == version


def test_the_x86_file_pins_a_tensorrt_the_conformance_tests_import():
    text = (REQUIREMENTS / 'gpu-x86-cuda12.txt').read_text()
    bindings = re.search(r'^tensorrt-cu12-bindings==(\S+)', text, re.MULTILINE).group(1)
    libs = re.search(rf'^tensorrt-cu12-libs==(\S+)\s+{NVIDIA_ONLY}', text, re.MULTILINE).group(1)
    assert bindings == libs and bindings in trt_bindings.versions()
    assert '--extra-index-url https://pypi.nvidia.com' in text
    assert re.search(r'^cuda-bindings==12\.', text, re.MULTILINE)             # CUDA 12 driver, not r580+


def test_jetson_file_leaves_tensorrt_to_jetpack_and_matches_its_cuda():
    text = (REQUIREMENTS / 'jetson-jp6.txt').read_text()
    assert not re.search(r'^tensorrt', text, re.MULTILINE) and '--system-site-packages' in text
    assert re.search(r'^cuda-python==12\.6\.', text, re.MULTILINE)
    assert '10.3.0' in trt_bindings.versions()                               # JetPack 6's TensorRT is checked
