"""benchmarks/cpu.py: a tiny sweep writes the JSON and plot the README reads (structure, not timings)."""

import json
from pathlib import Path
import sys

import pytest

from tests.model_fixtures import write_tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'benchmarks'))

import cpu  # noqa: E402


@pytest.fixture(scope='module')
def identity_model(tmp_path_factory) -> Path:
    """A real uint8 graph with a card whose fused image is the visible one (ONNX Runtime runs it in microseconds)."""
    from onnx import helper
    folder = tmp_path_factory.mktemp('models')
    return write_tiny_model(folder, 'identity', helper.make_node('Identity', ['visible_bgr'], ['fused_bgr']))


def test_smoke_sweep_writes_runs_fits_and_plot(identity_model, tmp_path):
    out = tmp_path / 'cpu.json'
    cpu.main(['--models', str(identity_model), '--sizes', '64x48', '128x96', '--threads', '1',
              '--duration', '0.3', '--min-runs', '2', '--rate', '20', '--out', str(out)])
    results = json.loads(out.read_text())
    assert results['sizes'] == ['64x48', '128x96'] and results['threads'] == [1]
    rows = [(r['size'], r['pixels'], r['threads']) for r in results['runs']]
    assert rows == [('64x48', 3072, 1), ('128x96', 12288, 1)]
    for row in results['runs']:
        assert row['file'] == 'identity.onnx' and row['precision'] == 'fp32'
        assert row['model_only']['runs'] >= 2 and row['model_only']['ms']['p50'] > 0
        assert row['node']['pairs_sent'] > 0 and row['node']['fused_received'] > 0   # frames went through DDS
    (fit,) = results['fits']
    assert fit['file'] == 'identity.onnx' and set(fit['ms_per_megapixel_by_size']) == {'64x48', '128x96'}
    assert {'intercept_ms', 'ms_per_megapixel', 'r2'} <= set(fit)
    assert out.with_suffix('.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    table = out.with_suffix('.md').read_text()
    assert '| model | threads | 64x48 | 128x96 |' in table
    p50 = [f"{r['model_only']['ms']['p50']:.1f}" for r in results['runs']]
    assert f'| identity.onnx | 1 | {p50[0]} | {p50[1]} |' in table


def test_shipped_models_are_the_uint8_fusion_graphs(identity_model, tmp_path):
    (tmp_path / 'identity.onnx').write_bytes(identity_model.read_bytes())
    (tmp_path / 'identity.json').write_text(identity_model.with_suffix('.json').read_text())
    card = json.loads(identity_model.with_suffix('.json').read_text())
    (tmp_path / 'other_float.onnx').write_bytes(identity_model.read_bytes())
    (tmp_path / 'other_float.json').write_text(json.dumps({**card, 'graph': 'float', 'onnx': 'other_float.onnx'}))
    (tmp_path / 'no_card.onnx').write_bytes(identity_model.read_bytes())
    assert cpu.shipped_models(tmp_path) == [tmp_path / 'identity.onnx']


def test_linear_cost_fits_exactly():
    rows = [{'size': s, 'megapixels': mp, 'model_only': {'ms': {'p50': 2.0 + 10.0 * mp}}}
            for s, mp in (('a', 0.1), ('b', 0.3), ('c', 1.0))]
    fit = cpu.linear_fit(rows)
    assert fit['intercept_ms'] == pytest.approx(2.0) and fit['ms_per_megapixel'] == pytest.approx(10.0)
    assert fit['r2'] == pytest.approx(1.0) and fit['ms_per_megapixel_by_size']['a'] == pytest.approx(30.0)


@pytest.mark.parametrize('bad', ['640-480', '640x', '8x8'])
def test_bad_size_is_an_argument_error(bad, capsys):
    with pytest.raises(SystemExit):
        cpu.parse_args(['--sizes', bad])
    assert 'size' in capsys.readouterr().err


def test_merge_replaces_only_the_models_measured_again():
    row = {'size': '64x48', 'model_only': {'ms': {'p50': 1.0}}}
    old = {'command': 'first', 'machine': 'm', 'wall_s': 1.0,
           'runs': [{**row, 'file': 'a.onnx'}, {**row, 'file': 'b.onnx'}],
           'fits': [{'file': 'a.onnx'}, {'file': 'b.onnx'}]}
    new = {'command': 'second', 'machine': 'm', 'wall_s': 2.0, 'runs': [{**row, 'file': 'b.onnx', 'new': True}],
           'fits': [{'file': 'b.onnx', 'new': True}]}
    merged = cpu.merge_results(old, new)
    assert [(r['file'], r.get('new', False)) for r in merged['runs']] == [('a.onnx', False), ('b.onnx', True)]
    assert [(f['file'], f.get('new', False)) for f in merged['fits']] == [('a.onnx', False), ('b.onnx', True)]
    assert [p['command'] for p in merged['parts']] == ['first', 'second']
    assert [p['command'] for p in cpu.merge_results(merged, new)['parts']] == ['first', 'second', 'second']


@pytest.mark.parametrize('content, reason', [('{"runs": [', 'not valid JSON'), ('[1, 2]', 'no "runs" list')])
def test_a_damaged_merge_target_stops_before_the_sweep_and_is_left_alone(tmp_path, content, reason):
    """--merge used to read --out only after a sweep of many minutes, then lost that sweep on a JSON error."""
    out = tmp_path / 'cpu.json'
    out.write_text(content)
    with pytest.raises(SystemExit) as stop:
        cpu.main(['--models', str(tmp_path / 'never_opened.onnx'), '--merge', '--out', str(out)])
    assert reason in str(stop.value) and str(out) in str(stop.value)
    assert out.read_text() == content


def test_microsecond_timings_keep_their_digits():
    """CI failure: an identity graph ran in 4 us, and two-decimal rounding reported its p50 as 0.0 ms."""
    import rig
    stats = rig.percentiles([0.0041, 0.0043, 0.0045])
    assert stats['p50'] == 0.0043 and stats['max'] == 0.0045
    assert rig.percentiles([1988.304, 1990.0])['p50'] == 1989.15     # above 1 ms: two decimals, as before


def test_results_name_the_cpu_model():
    """'x86_64' named no CPU, yet the same sweep ran 2.8-4x faster on another day's VM."""
    import rig
    name = rig.cpu_model()
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.is_file() and 'model name' in cpuinfo.read_text():      # x86 Linux, as on CI
        assert name != 'x86_64' and f': {name}' in cpuinfo.read_text()
    assert name and rig.machine()['cpu'] == name
