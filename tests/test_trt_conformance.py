"""
The project's TensorRT code and the test double, checked against the real TensorRT bindings of 10.3, 10.13 and 11.4.

No GPU and no TensorRT library here: the real `tensorrt-cu12-bindings` wheels (fetched by
`.ci/setup --dev`) are imported in a subprocess over a gcc-built stub of the nine C symbols
they need (tests/trt_bindings.py). Every class, method, property and enum member is then the
real one, with its signatures in pybind11's docstrings. What the code uses is read from the
code (tests/trt_usage.py), so this cannot go stale: a new call is checked the day it is written.
"""

import pytest

from tests import trt_bindings
from tests.trt_double import FakeTensorRT, MIRRORED
from tests.trt_usage import describe, double_surface, python_files, TENSORRT, UsageAnalysis

VERSIONS = trt_bindings.versions()


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    """Unpack each version's wheel and build the stub library once for this module."""
    root = tmp_path_factory.mktemp('tensorrt')
    stub = trt_bindings.build_stub(root / 'stub')
    return {version: trt_bindings.unpack(version, root) for version in VERSIONS}, stub


@pytest.fixture(scope='module')
def uses():
    """Every expression of the project that reaches into the tensorrt module."""
    return UsageAnalysis(python_files('fusion_ros', 'training', 'benchmarks'), TENSORRT).uses()


def payload(uses, double: dict) -> dict:
    return {'uses': [{'file': u.file, 'line': u.line, 'path': u.path} for u in uses], 'double': double}


def test_versions_under_test_span_jetpack_to_the_newest():
    assert VERSIONS == ['10.3.0', '10.13.3.9', '11.4.0.106']


def test_the_analysis_finds_the_build_and_run_paths(uses):
    """Anchors: if the analysis stopped following values (a refactor it cannot see through), this fails."""
    found = {describe(u.path) for u in uses}
    files = {u.file for u in uses}
    assert {'fusion_ros/tensorrt/builder.py', 'fusion_ros/backends/tensorrt_backend.py', 'benchmarks/first_run.py'} \
        <= files
    for call in ('.Builder(module.Logger(module.Logger.WARNING)).create_network(_)', '.set_timing_cache(',
                 '.build_serialized_network(module.Builder', '.deserialize_cuda_engine(_).create_execution_context()'
                 '.execute_async_v3(_)', '.create_execution_context().set_input_shape(_, _)',
                 'module.NetworkDefinitionCreationFlag.STRONGLY_TYPED', 'module.nptype(module.Runtime('):
        assert any(call in text for text in found), call


@pytest.mark.parametrize('version', VERSIONS)
def test_code_and_double_conform_to_the_real_bindings(version, real, uses):
    sites, stub = real
    double = double_surface(FakeTensorRT(version), *MIRRORED)
    answer = trt_bindings.probe(sites[version], stub, payload(uses, double))
    assert answer['version'] == version
    assert answer['problems'] == []
    checked = set(answer['checked'])
    assert {'IBuilderConfig.set_timing_cache', 'IExecutionContext.execute_async_v3', 'double IOptimizationProfile'
            '.set_shape', 'double OnnxParser.__init__'} <= checked
    assert len(checked) > 60


def test_the_check_catches_what_real_tensorrt_refuses(real):
    """The probe is not a rubber stamp: calls and double members the real API lacks are reported."""
    sites, stub = real
    config = [('attr', 'Builder'), ('call', [[('attr', 'Logger'), ('call', [], [], False)]], [], False),
              ('attr', 'create_builder_config'), ('call', [], [], False)]
    wrong = [config + [('attr', 'set_flag'), ('call', [[('attr', 'BuilderFlag'), ('attr', 'FP16')]], [], False)],
             config + [('attr', 'set_timing_cache'), ('call', [None], [], False)],
             config + [('attr', 'set_memory_pool_limit'), ('call', [[('attr', 'Logger'), ('attr', 'WARNING')], None],
                                                           [], False)],
             [('attr', 'Runtime'), ('call', [None], [['log', None]], False)]]
    set_shape = [['name', False], ['min', False], ['opt', False], ['max', False]]
    legacy_double = {'IOptimizationProfile': {'methods': {'set_shape': set_shape}},
                     'BuilderFlag': {'members': {'FP16': None}},
                     'NetworkDefinitionCreationFlag': {'members': {'STRONGLY_TYPED': 1}, 'absent': ['EXPLICIT_BATCH']}}
    uses = [{'file': 'x.py', 'line': i, 'path': p} for i, p in enumerate(wrong)]
    problems = trt_bindings.probe(sites['11.4.0.106'], stub, {'uses': uses, 'double': legacy_double})['problems']
    text = '\n'.join(problems)
    assert "BuilderFlag has no attribute 'FP16'" in text                    # weak typing is gone in 11
    assert 'set_timing_cache refuses the call' in text and 'missing' in text
    assert 'pool wants MemoryPoolType, gets Severity' in text
    assert "no parameter 'log'" in text
    assert 'set_shape(name, min, opt, max) matches no real overload (input, min, opt, max)' in text
    assert 'BuilderFlag.FP16 does not exist' in text
    assert 'STRONGLY_TYPED is 1, the real one 0' in text                   # renumbered when EXPLICIT_BATCH went
    old = trt_bindings.probe(sites['10.3.0'], stub, {'uses': uses[:1], 'double': legacy_double})['problems']
    assert not any('FP16' in p for p in old)                                # 10.x still has the flag
    assert any('EXPLICIT_BATCH is modelled as absent' in p for p in old)


def test_the_double_models_each_version():
    """10.x keeps weak typing and EXPLICIT_BATCH; 11.x has neither (checked against the real ones above)."""
    ten, eleven = FakeTensorRT('10.3.0'), FakeTensorRT('11.4.0.106')
    assert hasattr(ten.BuilderFlag, 'FP16') and not hasattr(eleven.BuilderFlag, 'FP16')
    assert (ten.NetworkDefinitionCreationFlag.STRONGLY_TYPED, eleven.NetworkDefinitionCreationFlag.STRONGLY_TYPED) \
        == (1, 0)
