"""Shipped configuration: parameter file matches the declared defaults, profile and launch file are valid."""

from pathlib import Path
import py_compile
import xml.etree.ElementTree as ET

import yaml

from fusion_ros.ros.node_params import PARAMS, validate_all

REPO = Path(__file__).resolve().parent.parent


def test_params_file_lists_every_parameter_with_its_default():
    values = yaml.safe_load((REPO / 'config' / 'fusion.yaml').read_text())['/**']['ros__parameters']
    assert values == {p.name: p.default for p in PARAMS}
    assert validate_all(values) is None


def test_fastdds_profile_has_a_16mb_shared_memory_segment():
    root = ET.parse(REPO / 'config' / 'fastdds_large_data.xml').getroot()
    ns = {'d': 'http://www.eprosima.com'}
    size = root.find('.//d:transport_descriptor[d:type="SHM"]/d:segment_size', ns)
    assert int(size.text) >= 1920 * 1080 * 3 * 2


def test_launch_files_compile(tmp_path):
    for path in (REPO / 'launch').glob('*.py'):
        py_compile.compile(str(path), cfile=str(tmp_path / (path.name + 'c')), doraise=True)
