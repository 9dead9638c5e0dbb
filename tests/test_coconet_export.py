"""CoCoNet export: both graphs through the shared exporter, parity at sizes that are and are not multiples of 16."""

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion_ros.backends.torch_backend import exported_weights
from fusion_ros.core.model_card import load_card
from fusion_ros.networks.coconet import FP32_OPS
from fusion_ros.networks.graphs import Uint8Graph
from fusion_ros.networks.registry import build_model
from training.common.checkpoint import save_checkpoint
from training.common.config import config_to_dict, TrainConfig
from training.deploy.export import export, FLOAT_TOL, load_core
from tests.model_fixtures import PAIRS

SIZE = (250, 330)   # neither side a multiple of 16: the graph pads 6 rows and 6 columns, and crops back


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """Export a seeded CoCoNet (attention switched on: gamma 0.5) with one 250x330 sample pair."""
    folder = tmp_path_factory.mktemp('coconet')
    for sub, flag in (('ir', cv2.IMREAD_UNCHANGED), ('vi', cv2.IMREAD_COLOR)):
        (folder / 'samples' / sub).mkdir(parents=True)
        image = cv2.imread(str(PAIRS / sub / '00091D.png'), flag)
        cv2.imwrite(str(folder / 'samples' / sub / '00091D.png'), image[100:100 + SIZE[0], 200:200 + SIZE[1]])
    torch.manual_seed(0)
    model = build_model('coconet')
    with torch.no_grad():
        for attention in model.attention:
            attention.gamma.fill_(0.5)
    ckpt = folder / 'seeded_coconet.pt'
    save_checkpoint(ckpt, {'model': model.state_dict(), 'config': config_to_dict(TrainConfig(method='coconet')),
                           'step': 0, 'config_path': 'seeded-test-model'})
    return export(ckpt, folder / 'coconet.onnx', folder / 'samples', sample_limit=1)


def test_card_and_parity_at_an_odd_size(exported):
    uint8_path, float_path = exported
    card = load_card(uint8_path)
    assert card.method == 'coconet' and card.mask is None
    assert [t.name for t in card.outputs] == ['fused_bgr']
    parity = card.provenance['parity']
    assert parity['samples'] == ['00091D']
    assert parity['float_max_abs_diff'] <= FLOAT_TOL and parity['uint8_max_abs_diff'] <= 1
    assert card.provenance['parameters'] == 6_789_764 + 2_324_416
    weights = exported_weights(uint8_path, card)
    assert weights['method'] == 'coconet' and 'vgg.features.16.weight' in weights['model']
    # the four attention gammas are all 0.5 here, which the ONNX exporter merges into one initializer:
    # the graph cannot give each back by name, so the exporter falls back to a pinned .pt
    assert card.provenance['torch_weights']['file'] == 'coconet.pt'


def test_graph_pads_by_shape_ops_and_holds_the_fp32_ops(exported):
    for path in exported:
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert 'Pad' in ops and set(FP32_OPS) <= ops


@pytest.mark.parametrize('size', [(48, 80), (37, 53)])
def test_both_graphs_match_pytorch_at_other_sizes(exported, size):
    """The graph exported at 64x80 takes any size: a multiple of 16 (no pad; 1280x720 is one) and an odd one."""
    uint8_path, float_path = exported
    core, _ = load_core(float_path.parent / 'seeded_coconet.pt')
    rng = np.random.default_rng(0)
    vis, ir = (rng.random((1, 1, *size), np.float32) for _ in range(2))
    ir8, bgr = rng.integers(0, 256, size, np.uint8), rng.integers(0, 256, (*size, 3), np.uint8)
    got = ort.InferenceSession(str(float_path), providers=['CPUExecutionProvider']).run(
        None, {'visible_y': vis, 'ir': ir})[0]
    got8 = ort.InferenceSession(str(uint8_path), providers=['CPUExecutionProvider']).run(
        None, {'ir': ir8, 'visible_bgr': bgr})[0]
    with torch.no_grad():
        ref = core(torch.from_numpy(vis), torch.from_numpy(ir))[0].numpy()
        ref8 = Uint8Graph(core)(torch.from_numpy(ir8), torch.from_numpy(bgr))[0].numpy()
    assert got.shape == (1, 1, *size) and got8.shape == (*size, 3)
    assert np.abs(got - ref).max() <= FLOAT_TOL
    assert np.abs(got8.astype(int) - ref8.astype(int)).max() <= 1
