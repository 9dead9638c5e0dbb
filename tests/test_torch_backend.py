"""Torch backend on CPU: the training/ networks rebuilt from the exported weights (CUDA paths need a GPU)."""

import dataclasses
import json

import numpy as np
import pytest

from fusion_ros.backends import BackendOptions, create_backend
from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fusion_ros.backends.torch_backend import TorchBackend, weights_path
from fusion_ros.core.model_card import load_card
from fusion_ros.core.pipeline import FusionPipeline
from tests.model_fixtures import frame, random_feeds


@pytest.mark.parametrize('fixture', ['exported', 'exported_sgfusion', 'exported_seg'])
def test_torch_equals_onnxruntime_on_every_graph_kind(request, fixture):
    for model in request.getfixturevalue(fixture):
        card = load_card(model)
        backend = TorchBackend(model, card, threads=1, device='cpu')
        reference = OnnxRuntimeBackend(model, card, threads=1)
        feeds = random_feeds(card, 61, 83)
        got, want = backend.run(feeds), reference.run(feeds)
        assert set(got) == {t.name for t in card.outputs}
        for name in got:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
            diff = np.abs(got[name].astype(np.float64) - want[name].astype(np.float64))
            assert diff.max() <= (1e-5 if got[name].dtype == np.float32 else 1) or \
                (name == 'classes' and np.mean(diff > 0) <= 1e-3)
        assert backend.describe().endswith('on cpu fp32')             # fp16 applies on CUDA only


def test_weights_are_pinned_by_the_card(exported_seg, tmp_path):
    """A model whose graph folded weights away (the segmenter's BatchNorm) keeps a .pt, pinned by sha256."""
    model = exported_seg[0]
    card = load_card(model)
    assert card.provenance['torch_weights']['file'] == 'seafusion_seg.pt'
    copy = tmp_path / 'seafusion_seg.onnx'
    copy.write_bytes(model.read_bytes())
    copy.with_suffix('.json').write_text(model.with_suffix('.json').read_text())
    with pytest.raises(FileNotFoundError, match='PyTorch weights not found'):
        TorchBackend(copy, card, device='cpu')
    weights_path(copy).write_bytes(weights_path(model).read_bytes() + b'\0')
    with pytest.raises(ValueError, match='does not match the sha256'):
        TorchBackend(copy, card, device='cpu')
    unpinned = dataclasses.replace(card, provenance={k: v for k, v in card.provenance.items() if k != 'torch_weights'})
    with pytest.raises(ValueError, match='names no PyTorch weights'):
        TorchBackend(copy, unpinned, device='cpu')


def test_cuda_request_without_cuda_and_bad_precision_are_named(exported):
    card = load_card(exported[0])
    with pytest.raises(ValueError, match="device 'cuda' requested but torch .* sees no CUDA device"):
        TorchBackend(exported[0], card, device='cuda')
    with pytest.raises(ValueError, match='precision must be one of'):
        TorchBackend(exported[0], card, precision='int8')


def test_pipeline_with_the_torch_backend(exported):
    pipe = FusionPipeline.from_model(exported[0], backend='torch', options=BackendOptions(threads=1))
    ref = FusionPipeline.from_model(exported[0], threads=1)
    ir, vis = frame(48, 64, seed=3)
    diff = np.abs(pipe.fuse(ir, vis).fused_bgr.astype(int) - ref.fuse(ir, vis).fused_bgr.astype(int))
    assert diff.max() <= 1
    assert json.loads(exported[0].with_suffix('.json').read_text())['provenance']['torch_weights'] == \
        {'graph_prefix': 'core.net.'}
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        create_backend('tflite', exported[0], load_card(exported[0]))
