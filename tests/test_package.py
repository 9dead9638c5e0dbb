"""The package builds with colcon as ros.ament_python and installs what ROS tools look for."""

import ast
import os
from pathlib import Path
import shutil
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).with_name('colcon')

# Run from the colcon install space with the source tree off sys.path: where fusion_ros comes from,
# that training/ is not importable, that the ONNX Runtime path never imports torch, and the largest
# difference between the torch backend (networks from the install space) and ONNX Runtime.
INSTALLED_PROBE = """
import sys
from pathlib import Path
import numpy as np
import fusion_ros
print(fusion_ros.__file__)
try:
    import training  # noqa: F401
    print('training-importable')
except ImportError:
    print('no-training')
from fusion_ros.core.pipeline import FusionPipeline
model = Path(sys.argv[1])
rng = np.random.default_rng(0)
ir, vis = rng.integers(0, 256, (40, 56), np.uint8), rng.integers(0, 256, (40, 56, 3), np.uint8)
ref = FusionPipeline.from_model(model, threads=1).fuse(ir, vis).fused_bgr
print('torch-loaded' if 'torch' in sys.modules else 'torch-free')
got = FusionPipeline.from_model(model, backend='torch').fuse(ir, vis).fused_bgr
print(int(np.abs(got.astype(int) - ref.astype(int)).max()))
"""


def test_colcon_build_installs_package_data_and_scripts(tmp_path):
    src = tmp_path / 'src' / 'fusion_ros'
    skip = shutil.ignore_patterns('.venv', '.git', '.cache', 'runs', 'demo_out', 'build', 'install', 'log',
                                  '*.egg-info', '__pycache__')
    shutil.copytree(REPO, src, ignore=skip)
    result = subprocess.run([str(COLCON), 'build', '--base-paths', str(tmp_path / 'src')], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'PATH': f'{COLCON.parent}:{os.environ["PATH"]}'})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    share = tmp_path / 'install' / 'fusion_ros' / 'share' / 'fusion_ros'
    assert (share / 'package.xml').is_file()
    assert (tmp_path / 'install' / 'fusion_ros' / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'fusion_ros').is_file()
    assert (share / 'models' / 'seafusion.onnx').is_file() and (share / 'models' / 'seafusion.json').is_file()
    for script in ('fusion-ros', 'fusion_node'):
        assert (tmp_path / 'install' / 'fusion_ros' / 'lib' / 'fusion_ros' / script).is_file(), script
    assert (share / 'launch' / 'fusion.launch.py').is_file() and (share / 'config' / 'fusion.yaml').is_file()
    assert (share / 'config' / 'fastdds_large_data.xml').is_file()
    site = next((tmp_path / 'install' / 'fusion_ros' / 'lib').glob('python3*/site-packages'))
    probe = subprocess.run([sys.executable, '-c', INSTALLED_PROBE, str(share / 'models' / 'seafusion.onnx')],
                           env={**os.environ, 'PYTHONPATH': str(site)}, cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-2000:]
    lines = probe.stdout.split()
    assert lines[0].startswith(str(site)) and lines[1] == 'no-training' and lines[2] == 'torch-free', lines
    assert float(lines[3]) <= 1, 'torch backend from the install space differs from ONNX Runtime'


def test_runtime_never_imports_training():
    """Design rule: training imports the runtime, never the other way round (a colcon install has no training/)."""
    offenders = []
    for path in (REPO / 'fusion_ros').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ''] if isinstance(node, ast.ImportFrom) else []
            offenders += [f'{path.relative_to(REPO)}: {n}' for n in names if n.split('.')[0] in ('training', 'tests')]
    assert not offenders, offenders


def test_ci_runs_the_readme_test_command():
    readme = (REPO / 'README.md').read_text()
    command = 'bash .ci/setup --dev && .venv/bin/python -m pytest -q'
    assert readme.count(command) >= 1
    assert command in (REPO / '.ci' / 'run').read_text()


def test_package_xml_is_format_3_ament_python():
    text = (REPO / 'package.xml').read_text()
    assert '<package format="3">' in text and '<build_type>ament_python</build_type>' in text
    for dep in ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'lifecycle_msgs'):
        assert f'<exec_depend>{dep}</exec_depend>' in text
