"""The shipped SeAFusion models: cards pinned and complete, the default fuses both sources, demo runs end to end."""

import json
from pathlib import Path

import numpy as np
import pytest

from fusion_ros.cli.main import main
from fusion_ros.core.imageio import read_ir, read_visible
from fusion_ros.core.model_card import load_card, sha256_of
from fusion_ros.core.pipeline import FusionPipeline, installed_model_path
from fusion_ros.evaluation import metrics

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / 'models' / 'seafusion_target.onnx'
PAIRS = REPO / 'tests' / 'data' / 'pairs'


def test_default_model_is_the_shipped_one():
    assert installed_model_path() == MODEL


@pytest.mark.parametrize('name, graph', [(f'{stem}{suffix}.onnx', graph) for stem in ('seafusion', 'seafusion_target')
                                         for suffix, graph in (('', 'uint8'), ('_float', 'float'))])
def test_cards_are_complete(name, graph):
    card = load_card(REPO / 'models' / name)       # also verifies the sha256
    assert (card.method, card.graph) == ('seafusion', graph)
    prov = card.provenance
    # the command as it was run: training.train before issue 19 moved the loop to training.common.train
    assert prov['training']['command'].startswith(('python -m training.train ', 'python -m training.common.train '))
    assert len(prov['data']['holdout']['names']) >= 40
    for method in ('seafusion', 'max', 'mean'):
        assert set(metrics.METRIC_NAMES) <= set(prov['metrics'][method]), method
        assert prov['metrics'][method]['EN']['n'] == len(prov['data']['holdout']['names'])
    assert prov['parity']['float_max_abs_diff'] <= 1e-5 and prov['parity']['uint8_max_abs_diff'] <= 1


def test_default_keeps_more_target_contrast_at_the_same_metrics():
    """The rule the default was chosen by (issue 12), checked on the comparison its card carries."""
    card = load_card(MODEL)
    assert card.provenance['training']['config']['objective'] == 'seafusion_target'
    comparison = json.loads((MODEL.parent / card.provenance['comparison']['see']).read_text())
    contrast = comparison['target_contrast']['summary']
    person = {m: contrast[m]['per_class']['person']['mean'] for m in ('seafusion', 'seafusion_target')}
    assert person['seafusion_target'] > person['seafusion'] + 0.05
    means = comparison['metrics_mean']
    eight = ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf')
    ratio = np.mean([means['seafusion_target'][m] / means['seafusion'][m] for m in eight])
    assert ratio >= 0.98


@pytest.mark.parametrize('card', sorted((REPO / 'models').glob('*.json')), ids=lambda p: p.name)
def test_cards_hold_their_own_model_only(card):
    """Issue 19: no card repeats the other models' rows; the tables live once in models/comparison/."""
    raw = json.loads(card.read_text())
    assert card.stat().st_size < 25_000, card.stat().st_size
    stem = card.stem.removesuffix('_float')
    for key in ('comparison', 'other_tasks'):
        entry = raw.get('provenance', {}).get(key)
        if entry is not None:
            assert (card.parent / entry['see']).is_file()
            means = entry['metrics_mean'] if key == 'comparison' else \
                {m for task in entry['tasks'].values() for m in task['metrics_mean']}
            assert set(means) == {stem}, (key, set(means))


def test_holdout_samples_were_never_trained_on():
    names = load_card(MODEL).provenance['data']['holdout']['names']
    msrs_samples = [p.stem for p in (PAIRS / 'vi').glob('0*.png')]
    assert msrs_samples and set(msrs_samples) <= set(names)


def test_fused_image_carries_both_sources():
    pipeline = FusionPipeline.from_model(threads=1)
    ir, vis = read_ir(PAIRS / 'ir' / '00718N.png'), read_visible(PAIRS / 'vi' / '00718N.png')
    fused = metrics.as_gray(pipeline.fuse(ir, vis).fused_bgr)
    a, b = metrics.as_gray(ir), metrics.as_gray(vis)
    # a night scene: the fused frame must follow the IR structure and the visible one, and be neither
    assert np.corrcoef(fused.ravel(), a.ravel())[0, 1] > 0.3
    assert np.corrcoef(fused.ravel(), b.ravel())[0, 1] > 0.3
    assert metrics.mse(fused, a, b) > 0


def test_demo_command_writes_the_report(tmp_path, capsys):
    assert main(['demo', '--out', str(tmp_path)]) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert set(summary) == {'seafusion', 'max', 'mean'}
    assert summary['seafusion']['Qabf']['n'] == 7
    assert len(list((tmp_path / 'fused').iterdir())) == 7
    assert len(list(tmp_path.glob('cdf_*.png'))) == len(metrics.METRIC_NAMES)
    assert '| seafusion' in capsys.readouterr().out


@pytest.mark.parametrize('name, kind', [('sgfusion.onnx', 'saliency'), ('seafusion_seg.onnx', 'classes')])
def test_mask_models_are_shipped_with_their_mask_and_comparison(name, kind):
    card = load_card(REPO / 'models' / name)
    assert card.mask['kind'] == kind and card.mask['output'] in {t.name for t in card.outputs}
    own = card.provenance['comparison']
    comparison = json.loads((REPO / 'models' / own['see']).read_text())
    assert {'seafusion', 'seafusion_seg', 'sgfusion', 'max', 'mean'} <= set(comparison['metrics_mean'])
    assert own['pairs'] == comparison['pairs'] == len(card.provenance['data']['holdout']['names'])
    scores = comparison['segmentation']['scores']
    assert {'visible', 'infrared', 'seafusion', 'seafusion_seg', 'sgfusion'} <= set(scores)
    stem = Path(name).stem
    assert own['metrics_mean'] == {stem: comparison['metrics_mean'][stem]}
    assert own['segmentation']['scores'] == {stem: scores[stem]}
    result = FusionPipeline.from_model(REPO / 'models' / name, threads=1).fuse(
        read_ir(PAIRS / 'ir' / '00091D.png'), read_visible(PAIRS / 'vi' / '00091D.png'))
    assert result.mask.shape == result.fused_bgr.shape[:2] and result.mask.dtype == np.uint8
    assert result.mask.max() < (256 if kind == 'saliency' else len(card.mask['classes']))


def test_segmenter_and_torch_weights_are_shipped_and_pinned():
    segmenter = load_card(REPO / 'models' / 'seafusion_seg_segmenter.onnx')
    assert segmenter.graph == 'segment' and segmenter.mask['classes'] == ['background', 'person', 'bicycle', 'car']
    pinned = load_card(REPO / 'models' / 'seafusion_seg.onnx').provenance['torch_weights']
    assert sha256_of(REPO / 'models' / pinned['file']) == pinned['sha256']    # its graph folds BatchNorm away
    for name in ('seafusion.onnx', 'seafusion_target.onnx', 'sgfusion.onnx'):    # weights read from the graph
        assert load_card(REPO / 'models' / name).provenance['torch_weights'] == {'graph_prefix': 'core.net.'}
