"""The package builds with colcon as ros.ament_python and installs what ROS tools look for."""

import os
from pathlib import Path
import shutil
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).with_name('colcon')


def test_colcon_build_installs_package_data_and_scripts(tmp_path):
    src = tmp_path / 'src' / 'fusion_ros'
    skip = shutil.ignore_patterns('.venv', '.git', 'runs', 'demo_out', 'build', 'install', 'log', '*.egg-info',
                                  '__pycache__')
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
    probe = subprocess.run([sys.executable, '-c', 'import fusion_ros, sys; print(fusion_ros.__file__)'],
                           env={**os.environ, 'PYTHONPATH': str(site)}, cwd=tmp_path, capture_output=True, text=True)
    assert str(site) in probe.stdout, probe.stderr


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
