"""training.evaluation.compare_tasks (medical, multi-exposure, multi-focus), and compare's speed table and card rows."""

import json
import shutil

import pytest

from fusion_ros.evaluation.metrics import entropy, read_gray
from tests.model_fixtures import PAIRS, write_tiny_model
from training.evaluation import compare
from training.evaluation import compare_tasks


@pytest.fixture
def identity_model(tmp_path):
    """A real uint8 graph whose fused image is the colour input, so its scores are those of that input."""
    from onnx import helper
    return write_tiny_model(tmp_path, 'identity', helper.make_node('Identity', ['visible_bgr'], ['fused_bgr']))


def make_task(data, task, stems):
    """Lay bundled pairs out as the task's two folders (infrared as the gray folder, visible as the colour one)."""
    for sub, role in ((task.gray, 'ir'), (task.colour, 'vi')):
        (data / task.folder / sub).mkdir(parents=True)
        for stem in stems:
            shutil.copy(PAIRS / role / f'{stem}.png', data / task.folder / sub / f'{stem}.png')


def test_each_task_is_fused_scored_and_written_to_the_cards(identity_model, tmp_path):
    tasks = {t.name: t for t in compare_tasks.TASKS}
    data = tmp_path / 'data'
    make_task(data, tasks['mri_ct'], ['00091D', '01028N'])
    make_task(data, tasks['multi_focus'], ['TNO_001'])
    summary = compare_tasks.main(['--models', str(identity_model), '--data', str(data), '--tasks', 'mri_ct',
                                  'multi_focus', '--out', str(tmp_path / 'out'), '--work', str(tmp_path / 'work'),
                                  '--threads', '1'])
    assert list(summary['tasks']) == ['mri_ct', 'multi_focus']
    ct = summary['tasks']['mri_ct']
    assert ct['pairs'] == 2 and set(ct['metrics_mean']) == {'identity', 'max', 'mean'}
    colour = data / 'medical' / 'mri_ct' / 'ct'
    expected_en = sum(entropy(read_gray(p)) for p in sorted(colour.iterdir())) / 2
    assert ct['metrics_mean']['identity']['EN'] == pytest.approx(expected_en, abs=1e-6)   # fused == colour input
    assert summary['tasks']['multi_focus']['pairs'] == 1
    text = (tmp_path / 'out' / 'summary.md').read_text()
    assert '### mri_ct (2 pairs: mri as infrared, ct as visible)' in text and '| identity |' in text
    assert json.loads((tmp_path / 'out' / 'summary.json').read_text()) == summary
    card = json.loads(identity_model.with_suffix('.json').read_text())['provenance']['other_tasks']
    assert card['see'] == 'out/summary.json' and card['command'] == summary['command']
    assert card['tasks']['mri_ct'] == {**ct, 'metrics_mean': {'identity': ct['metrics_mean']['identity']}}


def test_a_card_keeps_its_own_rows_of_a_table_of_many_models():
    table = {'command': 'c', 'pairs': 3, 'metrics_mean': {'a': {'EN': 1}, 'b': {'EN': 2}, 'max': {'EN': 3}},
             'speed': {'source': 's', 'models': {'b': 9}}, 'relative': {'reference': 'b', 'methods': {'a': 1, 'b': 1}}}
    assert compare.own_rows(table, {'a', 'b'}, 'a') == {
        'command': 'c', 'pairs': 3, 'metrics_mean': {'a': {'EN': 1}}, 'speed': {'source': 's', 'models': {}},
        'relative': {'reference': 'b', 'methods': {'a': 1}}}


def test_a_missing_task_folder_is_named_before_anything_is_fused(identity_model, tmp_path):
    data = tmp_path / 'data'
    make_task(data, compare_tasks.TASKS[0], ['00091D'])
    with pytest.raises(FileNotFoundError, match='multi_exposure/under does not exist'):
        compare_tasks.main(['--models', str(identity_model), '--data', str(data), '--tasks', 'mri_ct', 'multi_exposure',
                            '--out', str(tmp_path / 'out'), '--work', str(tmp_path / 'work')])
    assert not (tmp_path / 'work').exists()


def test_speed_rows_read_the_cpu_sweep_and_mark_what_it_lacks(tmp_path):
    run = {'file': 'a.onnx', 'size': '640x480', 'threads': 2, 'model_only': {'ms': {'p50': 12.5}},
           'node': {'fused_per_s': 29.2}}
    timings = {'runs': [run, {**run, 'threads': 1, 'model_only': {'ms': {'p50': 20.0}}},
                        {**run, 'size': '320x240', 'model_only': {'ms': {'p50': 3.0}}}]}
    rows = compare.speed_rows(timings, [tmp_path / 'a.onnx', tmp_path / 'b.onnx'])
    assert rows == {'a': {'model_only_ms_p50': 12.5, 'node_fused_per_s': 29.2}, 'b': None}
    text = compare.speed_markdown(rows, '640x480', 2, 'cpu.json')
    assert '| a | 12.5 | 29.2 |' in text and '| b | not measured | not measured |' in text


def test_relative_scores_give_the_bar_of_issue_9():
    """Fractions of the reference per metric, their mean and the weakest; a zero or missing reference is left out."""
    means = {'ref': {'EN': 2.0, 'SD': 10.0, 'SF': 4.0, 'AG': 0.0, 'CC': 0.5},
             'near': {'EN': 2.0, 'SD': 9.0, 'SF': 4.4, 'AG': 1.0, 'CC': 0.1},
             'weak': {'EN': 1.0, 'SD': 10.0, 'SF': 4.0, 'AG': 1.0, 'CC': 0.9}}
    relative = compare.relative_scores(means, 'ref')
    assert relative['near']['ratios'] == pytest.approx({'EN': 1.0, 'SD': 0.9, 'SF': 1.1})   # AG: zero reference
    assert relative['near']['mean'] == pytest.approx(1.0) and relative['near']['lowest'] == 'SD'
    assert relative['weak']['lowest'] == 'EN' and relative['weak']['mean'] == pytest.approx(2.5 / 3)
    table = compare.relative_markdown(relative, 'ref', mean_bar=0.95, floor=0.85).splitlines()
    verdicts = {line.split('|')[1].strip(): line.split('|')[-2].strip() for line in table[4:]}
    assert verdicts == {'ref': 'yes', 'near': 'yes', 'weak': 'no'}             # weak: EN at 0.5 is below the floor
    with pytest.raises(ValueError, match="'other' is not among"):
        compare.relative_scores(means, 'other')
