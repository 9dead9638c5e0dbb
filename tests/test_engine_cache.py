"""Engine cache key and policy: load on match, rebuild or refuse otherwise, naming every differing field."""

import json

import pytest

from dataclasses import fields
from pathlib import Path
import re

from fusion_ros.tensorrt.engine_cache import (decide, EngineKey, EngineRebuildRefused, key_differences, key_from_dict,
                                              key_to_dict, Profile, sidecar_path)

PROFILE = Profile((240, 320), (480, 640), (1080, 1920))
KEY = EngineKey('10.3.0', 'NVIDIA H100 80GB HBM3', '9.0', 'seafusion_fp16.onnx', 'a' * 64, 'fp16', PROFILE)
GPU_DOC = Path(__file__).resolve().parent.parent / 'docs' / 'gpu.md'


def cached_plan(tmp_path, key=KEY):
    plan = tmp_path / 'seafusion.plan'
    plan.write_bytes(b'plan bytes')
    sidecar_path(plan).write_text(json.dumps(key_to_dict(key, build_seconds=41.234)))
    return plan


def test_sidecar_round_trip_keeps_the_key_and_build_time():
    data = key_to_dict(KEY, build_seconds=41.234)
    assert data['build_seconds'] == 41.23 and data['profile']['opt_hw'] == [480, 640]
    assert key_from_dict(json.loads(json.dumps(data))) == KEY


def test_matching_plan_is_loaded(tmp_path):
    assert decide(cached_plan(tmp_path), KEY).action == 'load'


@pytest.mark.parametrize('field, value, text', [
    ('tensorrt_version', '10.4.0', "tensorrt_version: cached '10.3.0', wanted '10.4.0'"),
    ('gpu_name', 'Orin', "gpu_name: cached 'NVIDIA H100 80GB HBM3', wanted 'Orin'"),
    ('compute_capability', '8.7', "compute_capability: cached '9.0', wanted '8.7'"),
    ('graph', 'seafusion.onnx', "graph: cached 'seafusion_fp16.onnx', wanted 'seafusion.onnx'"),
    ('onnx_sha256', 'b' * 64, 'onnx_sha256: cached'),
    ('precision', 'fp32', "precision: cached 'fp16', wanted 'fp32'"),
    ('profile', Profile((240, 320), (720, 1280), (1080, 1920)), 'opt_hw=(480, 640)'),
])
def test_every_mismatch_is_named(tmp_path, field, value, text):
    wanted = EngineKey(**{**{f: getattr(KEY, f) for f in KEY.__dataclass_fields__}, field: value})
    decision = decide(cached_plan(tmp_path), wanted)
    assert decision.action == 'build' and text in decision.reason
    with pytest.raises(EngineRebuildRefused, match=field):
        decide(cached_plan(tmp_path), wanted, allow_rebuild=False)


def test_all_differing_fields_are_listed_together():
    other = EngineKey('10.4.0', 'Orin', '8.7', 'seafusion_fp16.onnx', 'a' * 64, 'fp32', PROFILE)
    assert [d.split(':')[0] for d in key_differences(KEY, other)] == [
        'tensorrt_version', 'gpu_name', 'compute_capability', 'precision']


def test_missing_plan_sidecar_or_broken_sidecar_means_build(tmp_path):
    assert 'no engine at' in decide(tmp_path / 'none.plan', KEY).reason
    plan = cached_plan(tmp_path)
    sidecar_path(plan).write_text('{not json')
    assert 'unreadable' in decide(plan, KEY).reason
    sidecar_path(plan).unlink()
    assert 'has no sidecar' in decide(plan, KEY).reason


@pytest.mark.parametrize('kwargs, message', [
    ({'precision': 'int8'}, 'precision must be one of fp32, fp16'),
    ({'profile': Profile((480, 640), (240, 320), (1080, 1920))}, 'profile height must satisfy'),
])
def test_bad_keys_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineKey(**{**{f: getattr(KEY, f) for f in KEY.__dataclass_fields__}, **kwargs})


def test_the_sidecar_never_takes_the_name_of_the_model_card():
    """A plan named after its model (models/seafusion.engine) must not overwrite models/seafusion.json."""
    assert sidecar_path(Path('models/seafusion.engine')) == Path('models/seafusion.engine.json')


def test_a_forced_decision_rebuilds_a_matching_plan(tmp_path):
    decision = decide(cached_plan(tmp_path), KEY, force=True)
    assert decision.action == 'build' and 'forced' in decision.reason


def test_docs_list_exactly_what_invalidates_a_plan():
    """docs/gpu.md's cache-key table names every key field and nothing else (plus the informational build time)."""
    section = GPU_DOC.read_text().split('### The cache key', 1)[1].split('\n#', 1)[0]
    documented = re.findall(r'^\| `(\w+)`', section, re.MULTILINE)
    assert documented == [f.name for f in fields(EngineKey)] + ['build_seconds']
