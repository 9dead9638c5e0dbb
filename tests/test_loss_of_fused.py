"""training.evaluation.loss_of_fused: fused images scored by a training objective, as if a network made them."""

import numpy as np
import pytest

from training.common.config import config_from_dict
from training.common.data import Pair
from training.evaluation.loss_of_fused import luma, main, markdown, mean_losses


def pair(name: str, rng: np.random.Generator) -> Pair:
    ir = rng.random((40, 48), dtype=np.float32)
    vis_bgr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    return Pair(name=name, source='msrs', ir=ir, vis_y=luma(vis_bgr).astype(np.float32), vis_bgr=vis_bgr)


def test_luma_of_gray_and_colour_images():
    gray = np.full((4, 5), 128, np.uint8)
    np.testing.assert_allclose(luma(gray), 128 / 255, atol=1e-6)
    assert luma(np.dstack([gray] * 3)).shape == (4, 5)


def test_the_coconet_loss_prefers_its_sources_over_noise_and_the_table_ranks_by_it():
    # CoCoNet's stage-1 objective without a VGG file: the continued run's form (branch from init_from).
    config = config_from_dict({'method': 'coconet', 'init_from': 'models/coconet.onnx'})
    rng = np.random.default_rng(0)
    pairs = [pair('a', rng), pair('b', rng)]
    outputs = {'blend': {p.name: (p.ir + p.vis_y) / 2 for p in pairs},
               'noise': {p.name: rng.random(p.ir.shape, dtype=np.float32) for p in pairs}}
    table = mean_losses(config, outputs, pairs)
    assert set(table['blend']) >= {'loss', 'l_ssim', 'l_mse'}
    assert table['blend']['loss'] < table['noise']['loss']
    text = markdown(table, len(pairs), 'coconet')
    assert text.index('| blend |') < text.index('| noise |')
    assert f"| blend | {table['blend']['loss']:.4g} |" in text


def test_unknown_objective_is_named():
    with pytest.raises(ValueError, match='no objective'):
        mean_losses(config_from_dict({'method': 'coconet', 'objective': 'nope'}), {'x': {}}, [])


def test_a_pair_count_below_one_is_named_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['--config', 'training/configs/coconet_continue.yaml', '--run', str(tmp_path), '--models',
              'models/realtime.onnx', '--pairs', '0'])
    assert exit_info.value.code == 2 and '--pairs must be at least 1, got 0' in capsys.readouterr().err
