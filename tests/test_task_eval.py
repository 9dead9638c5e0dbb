"""Task-driven evaluation: IoU maths, `fusion-ros evaluate --segmenter`, training.evaluation.compare."""

import json
import shutil

import numpy as np
import pytest

from fusion_ros.cli.main import main
from fusion_ros.evaluation.segmentation_metrics import confusion, iou_per_class, mean_iou
from fusion_ros.evaluation.task_eval import SegmenterRunner
from training.evaluation import compare
from tests.model_fixtures import PAIRS
from tests.msrs_fixtures import DATA, MSRS_STEMS


def test_iou_from_the_confusion_matrix():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 2]])
    m = confusion(pred, truth, 4)
    assert m.sum() == 7 and m[0, 0] == 3 and m[0, 1] == 1 and m[1, 1] == 2 and m[1, 0] == 1
    iou = iou_per_class(m)
    assert iou[0] == pytest.approx(3 / 5) and iou[1] == pytest.approx(2 / 4)
    assert np.isnan(iou[2]) and np.isnan(iou[3])                       # 255 is ignored, so class 2 never occurs
    assert mean_iou(m) == pytest.approx((3 / 5 + 2 / 4) / 2)
    with pytest.raises(ValueError, match='differ in shape'):
        confusion(pred[:1], truth, 4)
    wrong = pred.copy()
    wrong[0, 0] = 7
    with pytest.raises(ValueError, match='class id 7 outside 0..3'):
        confusion(wrong, truth, 4)


@pytest.fixture()
def msrs_folders(tmp_path):
    """The 3 bundled MSRS pairs as ir/ and vi/, and a 'fused' folder that is a copy of the visible images."""
    for sub in ('ir', 'vi'):
        (tmp_path / sub).mkdir()
        for stem in MSRS_STEMS:
            shutil.copy(PAIRS / sub / f'{stem}.png', tmp_path / sub)
    shutil.copytree(tmp_path / 'vi', tmp_path / 'copy_of_visible')
    return tmp_path


def test_evaluate_with_segmenter_scores_every_input(exported_seg, msrs_folders, capsys):
    segmenter = exported_seg[0].with_name('seafusion_seg_segmenter.onnx')
    out = msrs_folders / 'report'
    code = main(['evaluate', '--fused', str(msrs_folders / 'copy_of_visible'), '--ir', str(msrs_folders / 'ir'),
                 '--vis', str(msrs_folders / 'vi'), '--out', str(out), '--workers', '1', '--quiet',
                 '--segmenter', str(segmenter), '--masks', str(DATA / 'boxes')])
    assert code == 0
    report = json.loads((out / 'segmentation.json').read_text())['scores']
    assert set(report) == {'visible', 'infrared', 'copy_of_visible'}
    assert report['copy_of_visible'] == report['visible']               # same pixels, same segmenter, same score
    assert report['visible']['images'] == 3 and set(report['visible']['iou']) == {'background', 'person',
                                                                                  'bicycle', 'car'}
    assert '| infrared |' in (out / 'segmentation.md').read_text() and 'mIoU' in capsys.readouterr().out


def test_evaluate_segmenter_errors_are_named(exported, exported_seg, msrs_folders, capsys):
    base = ['evaluate', '--fused', str(msrs_folders / 'copy_of_visible'), '--ir', str(msrs_folders / 'ir'),
            '--vis', str(msrs_folders / 'vi'), '--out', str(msrs_folders / 'r'), '--workers', '1', '--quiet']
    assert main(base + ['--segmenter', str(exported[0])]) == 2
    assert '--segmenter and --masks go together' in capsys.readouterr().err
    assert main(base + ['--segmenter', str(exported[0]), '--masks', str(DATA / 'boxes')]) == 2
    assert "is a 'uint8' graph; task-driven evaluation needs a segmenter" in capsys.readouterr().err
    segmenter = exported_seg[0].with_name('seafusion_seg_segmenter.onnx')
    assert main(base + ['--segmenter', str(segmenter), '--masks', str(msrs_folders / 'ir')]) == 2
    assert 'no image has a mask in' in capsys.readouterr().err
    (msrs_folders / 'copy_of_visible' / '00091D.png').write_bytes(b'not a png')
    assert main(base + ['--segmenter', str(segmenter), '--masks', str(DATA / 'boxes')]) == 2
    assert 'cannot read image' in capsys.readouterr().err
    assert (msrs_folders / 'r' / 'summary.json').is_file()          # the metric report was written before
    runner = SegmenterRunner(segmenter, threads=1)
    assert runner(np.zeros((40, 52), np.uint8)).shape == (40, 52)


def test_compare_fuses_the_common_holdout_and_fills_the_cards(exported, exported_sgfusion, exported_seg, tmp_path):
    models = []
    for pair in (exported, exported_sgfusion):
        for path in pair:
            for suffix in ('.onnx', '.json', '.pt'):
                if path.with_suffix(suffix).is_file():
                    shutil.copy(path.with_suffix(suffix), tmp_path / (path.stem + suffix))
        models.append(tmp_path / pair[0].name)
    runs = [tmp_path / 'run_a', tmp_path / 'run_b']
    for run in runs:
        run.mkdir()
        (run / 'val_names.txt').write_text('00091D\n01028N\n')
    config = tmp_path / 'c.yaml'
    config.write_text(f'sources:\n  - {{name: msrs, ir: {PAIRS / "ir"}, vis: {PAIRS / "vi"},\n'
                      f'     masks: {DATA / "boxes"}}}\nval_source: msrs\n')
    segmenter = exported_seg[0].with_name('seafusion_seg_segmenter.onnx')
    compare.main(['--models', *map(str, models), '--runs', *map(str, runs), '--config', str(config),
                  '--segmenter', str(segmenter), '--out', str(tmp_path / 'cmp'), '--work', str(tmp_path / 'work'),
                  '--threads', '1'])
    full = json.loads((tmp_path / 'cmp' / 'comparison.json').read_text())
    assert full['pairs'] == 2 and set(full['metrics_mean']) == {'seafusion', 'sgfusion', 'max', 'mean'}
    assert set(full['segmentation']['scores']) == {'visible', 'infrared', 'seafusion', 'sgfusion'}
    contrast = full['target_contrast']['summary']
    assert set(contrast) == {'infrared', 'visible', 'seafusion', 'sgfusion', 'max', 'mean'}
    assert contrast['seafusion']['overall']['n'] > 0 and (tmp_path / 'cmp' / 'target_contrast.md').is_file()
    assert full['grid']['scenes'] == ['00091D', '01028N'] and (tmp_path / 'cmp' / 'grid.png').stat().st_size > 10_000
    assert full['relative']['reference'] == 'seafusion'
    assert full['relative']['methods']['seafusion']['mean'] == pytest.approx(1.0)
    # each card: its own rows only, and where the whole table is
    card = json.loads((tmp_path / 'sgfusion.json').read_text())['provenance']['comparison']
    assert card['see'] == 'cmp/comparison.json' and card['pairs'] == 2
    assert card['metrics_mean'] == {'sgfusion': full['metrics_mean']['sgfusion']}
    assert card['segmentation']['scores'] == {'sgfusion': full['segmentation']['scores']['sgfusion']}
    assert card['target_contrast']['summary'] == {'sgfusion': contrast['sgfusion']}
    own = full['relative']['methods']['sgfusion']
    assert card['relative'] == {'reference': 'seafusion', 'methods': {'sgfusion': own}}
    uint8, float_ = (json.loads((tmp_path / f'seafusion{s}.json').read_text())['provenance']['comparison']
                     for s in ('', '_float'))
    assert uint8 == float_ and set(uint8['metrics_mean']) == {'seafusion'}
    assert len(json.dumps(card)) < len(json.dumps(full)) / 2
    assert '| sgfusion |' in (tmp_path / 'cmp' / 'relative.md').read_text()
    (runs[1] / 'val_names.txt').write_text('00091D\n')
    with pytest.raises(ValueError, match='held out other pairs'):
        compare.main(['--models', str(models[0]), '--runs', *map(str, runs), '--config', str(config)])
