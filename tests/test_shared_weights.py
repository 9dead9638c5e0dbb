"""
Each set of weights ships once (issue 19): the float twin reads the uint8 graph's bytes, the torch backend
and ``init_from`` read the graph's initializers. Real ONNX files, ONNX Runtime and torch throughout.
"""

import dataclasses
import json
from pathlib import Path
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion_ros.backends.torch_backend import exported_weights, GRAPH_PREFIX, state_from_graph
from fusion_ros.core.model_card import load_card, sha256_of
from tests.model_fixtures import random_feeds
from training.common.checkpoint import load_checkpoint
from training.deploy.shared_weights import SOURCE_SHA_KEY, share_weights


def outputs(path, feeds):
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider']).run(None, feeds)


@pytest.fixture
def pair(exported, tmp_path):
    """The exported uint8 graph and a self-contained copy of its float twin, side by side in tmp_path."""
    uint8, float_graph = tmp_path / 'm.onnx', tmp_path / 'm_float.onnx'
    shutil.copy(exported[0], uint8)
    onnx.save(onnx.load(str(exported[1])), str(float_graph))      # loads shared weights back inline
    return uint8, float_graph


def test_float_twin_reads_the_uint8_bytes_and_computes_the_same(exported, pair):
    uint8, float_graph = pair
    feeds = random_feeds(load_card(exported[1]), 37, 53)
    before, size = outputs(float_graph, feeds), float_graph.stat().st_size
    assert share_weights(float_graph, uint8) == {'m.onnx': sha256_of(uint8)}
    assert float_graph.stat().st_size < size / 4
    after = outputs(float_graph, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    model = onnx.load(str(float_graph), load_external_data=False)
    assert {p.key: p.value for p in model.metadata_props}[SOURCE_SHA_KEY] == sha256_of(uint8)
    assert {e.value for t in model.graph.initializer for e in t.external_data if e.key == 'location'} == {'m.onnx'}
    again = float_graph.read_bytes()
    share_weights(float_graph, uint8)                                  # idempotent
    assert float_graph.read_bytes() == again


def test_weights_of_another_network_are_refused(pair, exported_sgfusion, tmp_path):
    uint8, _ = pair
    other = tmp_path / 'other_float.onnx'
    onnx.save(onnx.load(str(exported_sgfusion[1])), str(other))
    before = other.read_bytes()
    with pytest.raises(ValueError, match='is not in m.onnx: the two graphs do not hold the same weights'):
        share_weights(other, uint8)
    assert other.read_bytes() == before
    with pytest.raises(ValueError, match='must be in one folder'):
        share_weights(other, exported_sgfusion[0])


def test_exported_float_twin_is_pinned_with_the_file_it_reads(exported, tmp_path):
    """What export ships, and what load_card says when the shared file is missing or changed."""
    card = load_card(exported[1])
    assert card.external_data == {exported[0].name: sha256_of(exported[0])}
    assert exported[1].stat().st_size < exported[0].stat().st_size / 4
    for path in exported:
        for suffix in ('.onnx', '.json'):
            shutil.copy(path.with_suffix(suffix), tmp_path / (path.stem + suffix))
    copy = tmp_path / exported[1].name
    load_card(copy)
    (tmp_path / exported[0].name).write_bytes(exported[0].read_bytes() + b'\0')
    with pytest.raises(ValueError, match='the weights of seafusion_float.onnx, does not match the sha256'):
        load_card(copy)
    (tmp_path / exported[0].name).unlink()
    with pytest.raises(FileNotFoundError, match='reads its weights from seafusion.onnx, which is not beside it'):
        load_card(copy)
    assert load_card(copy, verify=False).graph == 'float'


def test_torch_weights_are_the_graph_initializers(exported, exported_seg):
    """No .pt beside a graph that holds every weight by name; the segmenter model keeps one (BatchNorm folded)."""
    card = load_card(exported[0])
    assert card.provenance['torch_weights'] == {'graph_prefix': GRAPH_PREFIX}
    assert not exported[0].with_suffix('.pt').exists()
    seeded = torch.load(exported[0].with_name('seeded_seafusion.pt'), weights_only=False)['model']
    for model in exported:                                          # the float twin reads the same bytes
        state = exported_weights(model, load_card(model))['model']
        assert state.keys() == seeded.keys() and all(torch.equal(state[k], v) for k, v in seeded.items())
    seg = load_card(exported_seg[0]).provenance['torch_weights']
    assert seg['file'] == 'seafusion_seg.pt' and sha256_of(exported_seg[0].with_suffix('.pt')) == seg['sha256']
    assert state_from_graph(exported[0], {'not.a.weight': torch.zeros(1)}) is None
    wrong = dataclasses.replace(card, method='sgfusion')
    with pytest.raises(ValueError, match='lacks weights its card says it holds; re-export'):
        exported_weights(exported[0], wrong)


def test_init_from_takes_an_exported_model(exported):
    """Training can start from a shipped model, which has no .pt (training/configs/seafusion_target.yaml)."""
    loaded = load_checkpoint(exported[0])
    seeded = torch.load(exported[0].with_name('seeded_seafusion.pt'), weights_only=False)['model']
    assert loaded['method'] == 'seafusion' and all(torch.equal(loaded['model'][k], v) for k, v in seeded.items())


def test_shipped_models_run_with_the_torch_backend_from_their_graphs():
    """Every shipped fusion model's torch weights resolve: from the graph, or the one pinned .pt left."""
    models = Path(__file__).resolve().parent.parent / 'models'
    pinned = {}
    for card_path in sorted(models.glob('*.json')):
        raw = json.loads(card_path.read_text())
        entry = raw.get('provenance', {}).get('torch_weights')
        if entry:
            pinned[card_path.stem] = entry
            assert exported_weights(card_path.with_suffix('.onnx'), load_card(card_path.with_suffix('.onnx')))
    assert {name for name, entry in pinned.items() if 'file' in entry} == \
        {'seafusion_seg', 'seafusion_seg_float', 'seafusion_seg_segmenter'}
    assert sorted(p.name for p in models.glob('*.pt')) == ['seafusion_seg.pt']
