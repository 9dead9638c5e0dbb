"""benchmarks/camera_rate.py: a tiny run writes the JSON, table and plot the README reads (structure, not timings)."""

import json
from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent


def test_tiny_camera_rate_run_writes_every_stage_and_the_node_rate(tmp_path):
    out = tmp_path / 'camera_rate.json'
    result = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'camera_rate.py'), '--sizes', '160x120',
                             '--options-size', '160x120', '--repeats', '2', '--duration', '3', '--rate', '10',
                             '--threads', '1', '--out', str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert 'may have shared the 2 cores' in report['note']
    for transport in ('raw', 'compressed'):
        row = report['stages']['160x120'][transport]
        assert set(row) >= {'decode', 'register', 'infer', 'encode', 'publish', 'sum_p50_ms'}
        assert all(row[stage]['n'] == 2 for stage in ('decode', 'register', 'infer', 'encode', 'publish'))
        node = report['node']['160x120'][transport]
        assert node['fused'] > 0 and node['latency_ms']['n'] > 0
    stages = report['stages']['160x120']
    assert stages['compressed']['input_bytes'] < stages['raw']['input_bytes']
    assert stages['compressed']['output_bytes'] < stages['raw']['output_bytes']
    assert any(key.startswith('restore 160x120 from 80x60') for key in report['options_160x120'])
    assert '| 160x120 | compressed |' in out.with_suffix('.md').read_text()
    assert out.with_suffix('.png').stat().st_size > 10_000
