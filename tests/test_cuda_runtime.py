"""
fusion_ros/tensorrt/cuda_memory.py against the real cuda-python (cuda-bindings 12.x, a dev requirement), with no driver.

This machine has no NVIDIA driver, which is exactly the first thing that goes wrong on a
misconfigured vehicle: every cudart call returns (cudaErrorInsufficientDriver, None). The
wrapper must turn that into an error naming the call, the CUDA error and what to install.
The calls the project makes are also bound against the real functions' signatures, and
the cudart test double is checked to offer nothing the real module lacks.
"""

import warnings

import numpy as np
import pytest

from fusion_ros.tensorrt.cuda_memory import CudaError, CudaRuntime, import_cudart, stream_address
from tests.trt_double import FakeCudart, FakeStream
from tests.trt_probe import Resolver
from tests.trt_usage import CUDART, double_surface, python_files, UsageAnalysis


@pytest.fixture(scope='module')
def cudart():
    with warnings.catch_warnings():
        warnings.simplefilter('error')          # the deprecated `from cuda import cudart` would warn
        module = import_cudart()
    assert module.__name__ == 'cuda.bindings.runtime'
    return module


def test_failing_calls_return_the_error_and_none(cudart):
    """What the wrapper relies on: the value of a failed call is None, not 0."""
    err, value = cudart.cudaMalloc(1024)
    assert err == cudart.cudaError_t.cudaErrorInsufficientDriver and value is None
    assert cudart.cudaStreamCreate() == (cudart.cudaError_t.cudaErrorInsufficientDriver, None)


@pytest.mark.parametrize('call', [lambda cuda: cuda.stream(), lambda cuda: cuda.device_alloc(64),
                                  lambda cuda: cuda.host_alloc(64, np.uint8), lambda cuda: cuda.device_identity()])
def test_no_driver_names_the_error_and_what_to_install(cudart, call):
    with pytest.raises(CudaError) as err:
        call(CudaRuntime(cudart))
    message = str(err.value)
    assert 'failed: cudaErrorInsufficientDriver' in message
    assert 'no NVIDIA driver was found' in message and 'CUDA 12.9 runtime' in message
    assert 'requirements/gpu-x86-cuda12.txt' in message and 'r580' in message


def test_other_errors_are_named_without_install_advice(cudart):
    class Refusing:
        def __getattr__(self, name):
            return getattr(cudart, name)

        def cudaFree(self, devPtr):  # noqa: N802, N803
            return (cudart.cudaError_t.cudaErrorInvalidValue,)

    with pytest.raises(CudaError, match=r'^CUDA cudaFree failed: cudaErrorInvalidValue$'):
        CudaRuntime(Refusing()).free_device(1234)


def test_stream_address_uses_the_stream_protocol_not_int(cudart):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert stream_address(cudart.cudaStream_t(0x7F00)) == 0x7F00
    assert stream_address(FakeStream(7)) == 7           # its int() raises, as deprecated


def test_every_cudart_call_of_the_project_binds_to_the_real_function(cudart):
    uses = UsageAnalysis(python_files('fusion_ros', 'training', 'benchmarks'), CUDART).uses()
    called = {u.path[0][1] for u in uses}
    assert {'cudaStreamCreate', 'cudaMalloc', 'cudaMallocHost', 'cudaMemcpyAsync', 'cudaStreamSynchronize',
            'cudaGetDeviceProperties', 'cudaDriverGetVersion', 'cudaRuntimeGetVersion'} <= called
    resolver = Resolver(cudart)
    for use in uses:
        resolver.resolve(use.path, f'{use.file}:{use.line}')
    assert resolver.problems == []
    assert 'cudaMemcpyKind.cudaMemcpyDeviceToHost' in resolver.checked


def test_the_cudart_double_offers_nothing_the_real_module_lacks(cudart):
    resolver = Resolver(cudart)
    resolver.check_double(double_surface(FakeCudart(), FakeStream))
    assert resolver.problems == []
    assert {'double cuda.bindings.runtime.cudaMemcpyAsync', 'double cudaStream_t.__cuda_stream__'} <= resolver.checked
    resolver.check_double({'': {'methods': {'cudaMemcpyAsync': [['dst', False], ['src', False], ['nbytes', False],
                                                                ['kind', False], ['stream', False]]}}})
    assert 'matches no real overload (dst, src, count, kind, stream)' in resolver.problems[0]
