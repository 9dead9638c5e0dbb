"""
Test double of the TensorRT 10 Python API and of cuda-python's cudart, backed by ONNX Runtime.

Why a double: TensorRT and CUDA cannot be installed on the development and CI machines of this
project (no GPU; TensorRT's wheels come from a host we cannot reach). This is the one mock the
project allows. It implements exactly the calls tensorrt.md documents and our code uses, with
their documented return conventions (bool results, None on failed build / deserialize, -1 for
dynamic dims, (err, value) tuples from cudart), and executes the *same ONNX file* with ONNX
Runtime, reading and writing tensors through real memory addresses. So the backend's shape,
buffer, address and dtype handling runs for real; only the GPU kernels are ONNX Runtime's.
"""

import ctypes
import json
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort

from fusion_ros.tensorrt.onnx_support import check_for_tensorrt

PLAN_MAGIC = b'FAKEPLAN'


class FakeCudart:
    """cudart over host memory: every 'device' pointer is a real ctypes buffer address."""

    class cudaMemcpyKind:   # noqa: N801 (cudart's spelling)
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self, gpu_name: str = 'Fake GPU', capability: tuple[int, int] = (9, 0)):
        self.memory: dict[int, ctypes.Array] = {}
        self.calls: dict[str, int] = {}
        self.props = SimpleNamespace(name=gpu_name.encode(), major=capability[0], minor=capability[1])

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _alloc(self, name: str, nbytes: int):
        self._count(name)
        buf = (ctypes.c_uint8 * nbytes)()
        self.memory[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaMalloc(self, nbytes):  # noqa: N802
        return self._alloc('cudaMalloc', nbytes)

    def cudaMallocHost(self, nbytes):  # noqa: N802
        return self._alloc('cudaMallocHost', nbytes)

    def cudaFree(self, address):  # noqa: N802
        self._count('cudaFree')
        del self.memory[address]
        return (0,)

    def cudaFreeHost(self, address):  # noqa: N802
        self._count('cudaFreeHost')
        del self.memory[address]
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        self._count('cudaMemcpyAsync')
        assert stream == 7, 'copies must go on the backend stream'
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        self._count('cudaStreamCreate')
        return 0, 7

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        self._count('cudaStreamSynchronize')
        return (0,)

    def cudaStreamDestroy(self, stream):  # noqa: N802
        return (0,)

    def cudaGetDeviceProperties(self, device):  # noqa: N802
        return 0, self.props


_NP_TO_TRT = {np.dtype(np.uint8): 'UINT8', np.dtype(np.float32): 'FLOAT', np.dtype(np.int64): 'INT64'}


def _ort_dtype(type_name: str) -> np.dtype:
    return np.dtype({'tensor(uint8)': np.uint8, 'tensor(float)': np.float32, 'tensor(int64)': np.int64}[type_name])


class FakeTensorRT:
    """The tensorrt module's surface that builder.py and tensorrt_backend.py use."""

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    class TensorIOMode:
        INPUT = 'INPUT'
        OUTPUT = 'OUTPUT'

    class MemoryPoolType:
        WORKSPACE = 'WORKSPACE'

    class DataType:
        UINT8 = 'UINT8'
        FLOAT = 'FLOAT'
        INT64 = 'INT64'

    def __init__(self, version: str = '10.3.0', fp16_flag: bool = True, fail_build: bool = False):
        self.__version__ = version
        self.BuilderFlag = SimpleNamespace(**({'FP16': 'FP16'} if fp16_flag else {}))
        self.fail_build = fail_build
        self.builds = 0
        fake = self

        class Builder:
            def __init__(self, logger):
                self.logger = logger

            def create_network(self, flags):
                assert flags == 0, 'weakly typed network expected (FP16 flag on TensorRT 10)'
                return SimpleNamespace(model=None)

            def create_builder_config(self):
                return _Config()

            def create_optimization_profile(self):
                return _Profile()

            def build_serialized_network(self, network, config):
                fake.builds += 1
                if fake.fail_build or network.model is None or not config.profiles:
                    return None
                header = {'version': fake.__version__, 'flags': sorted(config.flags),
                          'workspace': config.pools.get('WORKSPACE'), 'profile': config.profiles[0].shapes}
                return memoryview(PLAN_MAGIC + json.dumps(header).encode() + b'\n' + network.model)

        class OnnxParser:
            def __init__(self, network, logger):
                self.network, self.errors = network, []

            def parse(self, model_bytes, path=None):
                problems = check_for_tensorrt(path) if path else []
                self.errors = [f'In node -1 (parseGraph): UNSUPPORTED_NODE: {p}' for p in problems]
                if not self.errors:
                    self.network.model = bytes(model_bytes)
                return not self.errors

            @property
            def num_errors(self):
                return len(self.errors)

            def get_error(self, i):
                return self.errors[i]

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, plan):
                plan = bytes(plan)
                if not plan.startswith(PLAN_MAGIC):
                    return None
                header, _, model = plan[len(PLAN_MAGIC):].partition(b'\n')
                header = json.loads(header)
                if header['version'] != fake.__version__:   # TensorRT logs the mismatch and returns None
                    return None
                return _Engine(model, header['profile'])

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(dtype):
        return {'UINT8': np.uint8, 'FLOAT': np.float32, 'INT64': np.int64}[dtype]


class _Config:
    def __init__(self):
        self.flags, self.pools, self.profiles, self.cache = set(), {}, [], None

    def set_memory_pool_limit(self, pool, nbytes):
        self.pools[pool] = nbytes

    def set_flag(self, flag):
        self.flags.add(flag)

    def create_timing_cache(self, data):
        return SimpleNamespace(serialize=lambda: memoryview(b'TIMING' + bytes(data)[6:] + b'+'))

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache

    def add_optimization_profile(self, profile):
        for low, opt, high in profile.shapes.values():
            if not all(a <= b <= c for a, b, c in zip(low, opt, high)):
                return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1


class _Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002 (TensorRT's keyword names)
        if not len(min) == len(opt) == len(max):
            raise ValueError('min, opt and max must have the same rank')
        self.shapes[name] = [list(min), list(opt), list(max)]


class _Engine:
    def __init__(self, model: bytes, profile: dict):
        self.session = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
        self.profile = profile
        self.io = [(i.name, 'INPUT', _ort_dtype(i.type)) for i in self.session.get_inputs()] + \
                  [(o.name, 'OUTPUT', _ort_dtype(o.type)) for o in self.session.get_outputs()]
        self.contexts = []

    @property
    def num_io_tensors(self):
        return len(self.io)

    def get_tensor_name(self, i):
        return self.io[i][0]

    def get_tensor_mode(self, name):
        return next(mode for n, mode, _ in self.io if n == name)

    def get_tensor_dtype(self, name):
        return _NP_TO_TRT[next(dtype for n, _, dtype in self.io if n == name)]

    def get_tensor_profile_shape(self, name, index):
        assert index == 0
        return [tuple(s) for s in self.profile[name]]

    def create_execution_context(self):
        self.contexts.append(_Context(self))
        return self.contexts[-1]


class _Context:
    def __init__(self, engine: _Engine):
        self.engine, self.shapes, self.addresses, self.out_shapes = engine, {}, {}, {}
        self.set_shape_calls = 0

    def set_input_shape(self, name, shape):
        self.set_shape_calls += 1
        low, _, high = self.engine.profile[name]
        if len(shape) != len(low) or not all(a <= s <= b for a, s, b in zip(low, shape, high)):
            return False
        self.shapes[name] = tuple(shape)
        self.out_shapes = {}
        return True

    def infer_shapes(self):
        inputs = [n for n, mode, _ in self.engine.io if mode == 'INPUT']
        missing = [n for n in inputs if n not in self.shapes]
        if not missing and not self.out_shapes:   # resolve output shapes once per input-shape change
            zeros = {n: np.zeros(self.shapes[n], d) for n, mode, d in self.engine.io if mode == 'INPUT'}
            outs = self.engine.session.run(None, zeros)
            names = [n for n, mode, _ in self.engine.io if mode == 'OUTPUT']
            self.out_shapes = {n: o.shape for n, o in zip(names, outs)}
        return missing

    def get_tensor_shape(self, name):
        return self.out_shapes.get(name) or (-1,)

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def _view(self, name, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = (ctypes.c_uint8 * nbytes).from_address(self.addresses[name])
        return np.frombuffer(raw, np.uint8).view(dtype).reshape(shape)

    def execute_async_v3(self, stream_handle):
        assert stream_handle == 7, 'enqueue must use the backend stream, not the default one'
        io = self.engine.io
        if any(n not in self.addresses for n, _, _ in io):
            return False
        feeds = {n: self._view(n, self.shapes[n], d).copy() for n, mode, d in io if mode == 'INPUT'}
        outs = self.engine.session.run(None, feeds)
        for (name, _, dtype), value in zip([x for x in io if x[1] == 'OUTPUT'], outs):
            self._view(name, value.shape, dtype)[...] = value
        return True


def install_fakes(monkeypatch, trt: FakeTensorRT = None, cudart: FakeCudart = None) -> tuple:
    """
    Make `import tensorrt` and `from cuda.bindings import runtime` return the doubles.

    For the code paths that import them by name: the node's configure, `fusion-ros build-engine`
    and training.build_engines.
    """
    import sys
    import types
    trt, cudart = trt or FakeTensorRT(), cudart or FakeCudart()
    cuda, bindings = types.ModuleType('cuda'), types.ModuleType('cuda.bindings')
    bindings.runtime, cuda.bindings = cudart, bindings
    for name, module in (('tensorrt', trt), ('cuda', cuda), ('cuda.bindings', bindings),
                         ('cuda.bindings.runtime', cudart)):
        monkeypatch.setitem(sys.modules, name, module)
    return trt, cudart
