"""
The engine cache's faults (issue 10), each with the test that failed before its fix; TensorRT is the test double.

Real here: files, directories, locks, threads, timing-cache bytes, cards. The double follows the
real TensorRT API (tests/test_trt_conformance.py) and models what TensorRT documents: a timing
cache from another GPU is refused unless the mismatch is ignored, a second logger only gets a
warning, a damaged plan does not deserialize.
"""

import json
import threading
import time

import pytest

from fusion_ros.core.model_card import card_path_for, load_card
from fusion_ros.tensorrt import plan_store
from fusion_ros.tensorrt.builder import BuildSettings, EngineBuildError, ensure_engine
from fusion_ros.tensorrt.cuda_memory import CudaRuntime
from fusion_ros.tensorrt.engine_cache import EngineRebuildRefused, Profile, sidecar_path
from tests.trt_double import FakeCudart, FakeTensorRT, PLAN_MAGIC

SMALL = Profile((16, 16), (120, 160), (512, 640))


def ensure(model, plan=None, trt=None, log=None, **kwargs):
    """ensure_engine on the double with a small profile; returns (plan, decision, trt)."""
    trt = trt or FakeTensorRT()
    settings = BuildSettings(kwargs.pop('precision', 'fp16'), SMALL, timing_cache=kwargs.pop('timing_cache', None))
    path, decision, engine = ensure_engine(model, plan, settings, trt=trt, cuda=CudaRuntime(FakeCudart()),
                                           log=log or (lambda _: None), **kwargs)
    assert engine is not None
    return path, decision, trt


def test_a_plan_named_after_its_model_leaves_the_card_alone(exported):
    card_before = card_path_for(exported[0]).read_text()
    plan, _, _ = ensure(exported[0], exported[0].with_suffix('.engine'))     # models/seafusion.engine
    assert sidecar_path(plan).name == 'seafusion.engine.json' and sidecar_path(plan).is_file()
    assert card_path_for(exported[0]).read_text() == card_before
    load_card(exported[0])                                                    # still a valid card
    plan.unlink()
    sidecar_path(plan).unlink()


def test_a_foreign_timing_cache_is_refused_and_replaced_by_a_fresh_one(exported, tmp_path):
    """set_timing_cache(cache, False): a cache from another GPU is not forced in (documented functional bugs)."""
    cache = tmp_path / 'timing.cache'
    cache.write_bytes(json.dumps({'device': 'Orin', 'entries': 40}).encode())
    lines = []
    ensure(exported[0], tmp_path / 'a.engine', timing_cache=cache, log=lines.append)
    assert any('timing cache' in line and 'another GPU' in line and 'fresh' in line for line in lines)
    assert json.loads(cache.read_bytes()) == {'device': 'Fake GPU', 'entries': 1}       # the fresh one, saved
    lines.clear()
    ensure(exported[0], tmp_path / 'b.engine', timing_cache=cache, log=lines.append)    # now it is this GPU's
    assert not any('timing cache' in line for line in lines)
    assert json.loads(cache.read_bytes()) == {'device': 'Fake GPU', 'entries': 2}


def test_a_crash_between_plan_and_sidecar_never_pairs_a_new_plan_with_an_old_key(exported, tmp_path, monkeypatch):
    plan = tmp_path / 'm.engine'
    ensure(exported[0], plan)                                                 # plan + sidecar for fp16
    real_write = plan_store.write_atomic

    def crash_on_sidecar(path, data):
        if str(path).endswith('.json'):
            raise KeyboardInterrupt('power cut')
        real_write(path, data)
    monkeypatch.setattr(plan_store, 'write_atomic', crash_on_sidecar)
    with pytest.raises(KeyboardInterrupt):
        ensure(exported[0], plan, precision='fp32')                           # new plan written, then the crash
    monkeypatch.undo()
    assert plan.is_file() and not sidecar_path(plan).exists()
    _, decision, trt = ensure(exported[0], plan)                              # the old fp16 key must not match it
    assert decision.action == 'build' and 'has no sidecar' in decision.reason and trt._builds == 1


def test_writers_use_their_own_temp_files_and_clean_up(tmp_path, monkeypatch):
    target = tmp_path / 'plan.engine'
    temps = []
    real_replace = plan_store.os.replace
    monkeypatch.setattr(plan_store.os, 'replace', lambda src, dst: (temps.append(src), real_replace(src, dst)))
    for data in (b'one', b'two'):
        plan_store.write_atomic(target, data)
    assert target.read_bytes() == b'two' and len(set(temps)) == 2
    assert all(t != str(target) + '.tmp' and t.startswith(str(tmp_path / '.plan.engine.')) for t in temps)
    monkeypatch.setattr(plan_store.os, 'replace', lambda src, dst: (_ for _ in ()).throw(OSError('disk full')))
    with pytest.raises(OSError, match='disk full'):
        plan_store.write_atomic(target, b'three')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['plan.engine']      # no temp file left behind
    assert target.read_bytes() == b'two' and oct(target.stat().st_mode & 0o777) == '0o644'


def test_two_nodes_sharing_a_model_build_it_once(exported, tmp_path):
    trt = FakeTensorRT()
    builder = trt.Builder
    slow_build = builder.build_serialized_network

    def slow(self, network, config):
        time.sleep(0.5)            # a real build takes minutes: the second node arrives meanwhile
        return slow_build(self, network, config)
    builder.build_serialized_network = slow
    plan, decisions, logs = tmp_path / 'shared.engine', [], []

    def node():
        decisions.append(ensure(exported[0], plan, trt=trt, log=logs.append)[1].action)
    threads = [threading.Thread(target=node) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trt._builds == 1 and sorted(decisions) == ['build', 'load']
    assert any('waiting for another process that is building shared.engine' in line for line in logs)


def test_force_rebuilds_a_matching_plan(exported, tmp_path):
    plan = tmp_path / 'm.engine'
    ensure(exported[0], plan)
    _, decision, trt = ensure(exported[0], plan, force=True)
    assert decision.action == 'build' and trt._builds == 1


def test_a_plan_that_does_not_deserialize_is_rebuilt_despite_a_matching_sidecar(exported, tmp_path):
    plan = tmp_path / 'm.engine'
    ensure(exported[0], plan)
    plan.write_bytes(plan.read_bytes()[:40])                  # truncated copy: the sidecar still matches
    with pytest.raises(EngineRebuildRefused, match='matches its sidecar but TensorRT 10.3.0 cannot deserialize'):
        ensure(exported[0], plan, allow_rebuild=False)
    _, decision, trt = ensure(exported[0], plan)
    assert decision.action == 'build' and 'cannot deserialize' in decision.reason and trt._builds == 1
    assert plan.read_bytes().startswith(PLAN_MAGIC) and len(plan.read_bytes()) > 1000


def test_plans_go_to_ros_home_by_default_never_beside_the_model(exported, tmp_path, monkeypatch):
    """An install under /opt is read-only: the model folder is never written unless engine.path says so."""
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros'))
    before = sorted(p.name for p in exported[0].parent.iterdir())
    plan, _, _ = ensure(exported[0])
    fp16_sha = load_card(exported[0]).provenance['fp16']['sha256']
    assert plan == tmp_path / 'ros' / 'fusion_ros' / 'engines' / f'seafusion_fp16-{fp16_sha[:12]}.engine'
    assert plan.is_file() and sorted(p.name for p in exported[0].parent.iterdir()) == before
    monkeypatch.delenv('ROS_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert plan_store.engine_dir() == tmp_path / 'home' / '.ros' / 'fusion_ros' / 'engines'


def test_an_unwritable_plan_location_is_a_clear_error(exported, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    with pytest.raises(EngineBuildError, match='cannot write the TensorRT plan .*set engine.path'):
        ensure(exported[0], blocker / 'm.engine')


def test_one_tensorrt_logger_per_process(exported, tmp_path):
    """TensorRT keeps a global pointer to the first logger; builder, parser and runtime must all share it."""
    trt = FakeTensorRT()
    ensure(exported[0], tmp_path / 'a.engine', trt=trt)
    ensure(exported[0], tmp_path / 'b.engine', trt=trt, precision='fp32')
    assert len(trt._loggers) >= 5 and all(logger is trt._loggers[0] for logger in trt._loggers)
    assert trt._warnings == []
