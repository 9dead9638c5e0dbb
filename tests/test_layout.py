"""
The rooms keep their rules: the ROS-free core and evaluation never import rclpy or the ROS shell, and no
module of fusion_ros/ or training/ takes part in an import cycle.

Checked twice: in the source (every import statement, function-level ones included, so a lazy import
cannot hide) and by importing every module of both rooms in a fresh interpreter and looking at
sys.modules (which also catches a ROS import reached through another package, such as backends).
"""

import json
from pathlib import Path
import subprocess
import sys

from tests.import_graph import find_cycle, imports_of, module_graph, module_name, REPO, source_files

ROS_FREE_ROOMS = ('fusion_ros/core', 'fusion_ros/evaluation')
# rclpy and the message packages only a ROS install provides, and the shell of this package.
FORBIDDEN = ('rclpy', 'rosidl_runtime_py', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'lifecycle_msgs',
             'builtin_interfaces', 'fusion_ros.ros')


def forbidden_imports(paths: list[Path], root: Path = REPO) -> list[str]:
    """'file:line: module' for every import of a FORBIDDEN module (or a submodule of one)."""
    return [f'{path.relative_to(root)}:{line}: {name}' for path in paths for line, name in imports_of(path, root)
            if any(name == bad or name.startswith(bad + '.') for bad in FORBIDDEN)]


def test_rooms_exist_and_hold_no_loose_modules():
    """The top level keeps only __init__.py: every module lives in a room or one of the three subsystems."""
    package = REPO / 'fusion_ros'
    assert sorted(p.name for p in package.glob('*.py')) == ['__init__.py']
    rooms = {p.name for p in package.iterdir() if (p / '__init__.py').is_file()}
    assert rooms == {'core', 'ros', 'evaluation', 'cli', 'networks', 'backends', 'tensorrt'}


def test_core_and_evaluation_sources_never_import_ros():
    files = source_files(*ROS_FREE_ROOMS)
    assert len(files) >= 10, files  # the rooms are found, so an empty list cannot pass
    offenders = forbidden_imports(files)
    assert not offenders, offenders


def test_the_source_check_sees_relative_lazy_and_package_imports(tmp_path):
    """The checker itself: each spelling of a forbidden import in a planted package is reported."""
    core = tmp_path / 'fusion_ros' / 'core'
    core.mkdir(parents=True)
    (tmp_path / 'fusion_ros' / '__init__.py').write_text('')
    (core / '__init__.py').write_text('')
    (core / 'bad.py').write_text('import numpy\n'
                                 'from ..ros import node\n'
                                 'from fusion_ros import ros\n'
                                 'def f():\n'
                                 '    import rclpy.qos\n'
                                 'from .ok import thing\n')
    found = forbidden_imports([core / 'bad.py'], tmp_path)
    assert found == ['fusion_ros/core/bad.py:2: fusion_ros.ros', 'fusion_ros/core/bad.py:2: fusion_ros.ros.node',
                     'fusion_ros/core/bad.py:3: fusion_ros.ros', 'fusion_ros/core/bad.py:5: rclpy.qos'], found


def test_importing_core_and_evaluation_loads_no_ros():
    modules = [module_name(p) for p in source_files(*ROS_FREE_ROOMS)]
    code = ('import importlib, json, sys\n'
            f'for name in {modules!r}:\n'
            '    importlib.import_module(name)\n'
            'print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in '
            f'{[f.split(".")[0] for f in FORBIDDEN if f != "fusion_ros.ros"]!r} or m.startswith("fusion_ros.ros"))))\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded == [], loaded


def test_the_ros_shell_is_what_loads_rclpy():
    """The subprocess check can fail: importing the node does bring rclpy and the shell in."""
    code = 'import sys, fusion_ros.ros.node; print("rclpy" in sys.modules, "fusion_ros.ros" in sys.modules)'
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ['True', 'True'], result.stderr[-2000:]


def test_no_import_cycles_in_the_runtime_or_training():
    """A cycle (even through a function-level import) means two modules are one; issue 19 broke export <-> fp16."""
    graph = module_graph('fusion_ros', 'training')
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100     # the graph was read
    cycle = find_cycle(graph)
    assert not cycle, ' -> '.join(cycle)


def test_the_cycle_finder_finds_a_lazy_cycle_and_only_real_ones(tmp_path):
    package = tmp_path / 'pkg'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'a.py').write_text('from pkg import b\nfrom pkg.c import x\n')
    (package / 'b.py').write_text('def f():\n    from . import a\n')
    (package / 'c.py').write_text('import os\nx = 1\n')
    graph = module_graph('pkg', root=tmp_path)
    assert graph == {'pkg': set(), 'pkg.a': {'pkg', 'pkg.b', 'pkg.c'}, 'pkg.b': {'pkg', 'pkg.a'}, 'pkg.c': set()}
    assert find_cycle(graph) == ['pkg.a', 'pkg.b', 'pkg.a']
    (package / 'b.py').write_text('from pkg import c\n')
    assert find_cycle(module_graph('pkg', root=tmp_path)) == []
