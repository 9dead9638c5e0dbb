"""
Test double of the TensorRT Python API (10.x and 11.x) and of cuda-python's cudart, backed by ONNX Runtime.

Why a double: TensorRT and CUDA cannot run on the development and CI machines of this project
(no GPU). This is the one mock the project allows. It executes the *same ONNX file* with ONNX
Runtime, reading and writing tensors through real memory addresses, so the backend's shape,
buffer, address and dtype handling runs for real; only the GPU kernels are ONNX Runtime's.

It may offer nothing the real modules lack: every public class attribute, method (with its
parameter names and defaults) and enum member here is checked against the real bindings of
10.3, 10.13 and 11.4 and against the real cuda-bindings (tests/test_trt_conformance.py,
tests/test_cuda_runtime.py). Each class names the real class it stands for in ``_mirrors``;
what only tests read (call counters, recorded flags) starts with an underscore. Where the
versions differ the double follows the version it is given: TensorRT 11 has no weak typing
(no FP16/INT8/BF16 builder flags) and numbers NetworkDefinitionCreationFlag differently.
"""

import ctypes
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from fusion_ros.tensorrt.onnx_support import check_for_tensorrt

PLAN_MAGIC = b'FAKEPLAN'
WEAK_TYPING_FLAGS = ('FP16', 'INT8', 'BF16', 'FP8', 'INT4', 'OBEY_PRECISION_CONSTRAINTS',
                     'PREFER_PRECISION_CONSTRAINTS')


def _enum(mirrors: str, members: dict, absent: tuple = ()) -> type:
    """An enum-like class; `absent` lists real members of other versions this version must not have."""
    return type(mirrors.rsplit('.', 1)[-1], (), {'_mirrors': mirrors, '_absent': absent, **members})


class FakeStream:
    """cudart's cudaStream_t: the CUDA stream protocol gives its address; int() is deprecated."""

    _mirrors = 'cudaStream_t'

    def __init__(self, address: int):
        self._address = address

    def __cuda_stream__(self):
        return 0, self._address

    def __int__(self):
        raise AssertionError('int(cudaStream_t) is deprecated in cuda-python: use the __cuda_stream__ protocol')


class FakeCudart:
    """cudart over host memory: every 'device' pointer is a real ctypes buffer address."""

    _mirrors = ''
    cudaMemcpyKind = _enum('cudaMemcpyKind', {'cudaMemcpyHostToDevice': 1, 'cudaMemcpyDeviceToHost': 2})

    def __init__(self, gpu_name: str = 'Fake GPU', capability: tuple[int, int] = (9, 0)):
        self._memory: dict[int, ctypes.Array] = {}
        self._calls: dict[str, int] = {}
        self._props = type('cudaDeviceProp', (), {'name': gpu_name.encode(), 'major': capability[0],
                                                  'minor': capability[1]})()
        self._stream = FakeStream(7)

    def _count(self, name: str) -> None:
        self._calls[name] = self._calls.get(name, 0) + 1

    def _alloc(self, name: str, nbytes: int):
        self._count(name)
        buf = (ctypes.c_uint8 * nbytes)()
        self._memory[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def _on_stream(self, stream) -> None:
        assert stream is self._stream, 'work must go on the backend stream, not the default one'

    def cudaMalloc(self, size):  # noqa: N802 (cudart's spelling)
        return self._alloc('cudaMalloc', size)

    def cudaMallocHost(self, size):  # noqa: N802
        return self._alloc('cudaMallocHost', size)

    def cudaFree(self, devPtr):  # noqa: N802, N803
        self._count('cudaFree')
        del self._memory[devPtr]
        return (0,)

    def cudaFreeHost(self, ptr):  # noqa: N802
        self._count('cudaFreeHost')
        del self._memory[ptr]
        return (0,)

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):  # noqa: N802
        self._count('cudaMemcpyAsync')
        self._on_stream(stream)
        ctypes.memmove(dst, src, count)
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        self._count('cudaStreamCreate')
        return 0, self._stream

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        self._count('cudaStreamSynchronize')
        self._on_stream(stream)
        return (0,)

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self._on_stream(stream)
        return (0,)

    def cudaGetDeviceProperties(self, device):  # noqa: N802
        return 0, self._props


def _ort_dtype(type_name: str) -> np.dtype:
    return np.dtype({'tensor(uint8)': np.uint8, 'tensor(float)': np.float32, 'tensor(float16)': np.float16,
                     'tensor(int64)': np.int64}[type_name])


_NP_TO_TRT = {np.dtype(np.uint8): 'UINT8', np.dtype(np.float32): 'FLOAT', np.dtype(np.float16): 'HALF',
              np.dtype(np.int64): 'INT64'}


def graph_float_type(model_bytes: bytes) -> str:
    """'fp16' when the graph's weights are half precision, else 'fp32': what a strongly typed build computes in."""
    model = onnx.load_from_string(model_bytes)
    types = {init.data_type for init in model.graph.initializer}
    return 'fp16' if onnx.TensorProto.FLOAT16 in types else 'fp32'


class FakeTensorRT:
    """The tensorrt module of one version, as far as builder.py and tensorrt_backend.py use it."""

    _mirrors = ''
    TensorIOMode = _enum('TensorIOMode', {'INPUT': 'INPUT', 'OUTPUT': 'OUTPUT'})
    MemoryPoolType = _enum('MemoryPoolType', {'WORKSPACE': 'WORKSPACE'})
    DataType = _enum('DataType', {'UINT8': 'UINT8', 'FLOAT': 'FLOAT', 'HALF': 'HALF', 'INT64': 'INT64'})

    def __init__(self, version: str = '10.3.0', fail_build: bool = False, device: str = 'Fake GPU'):
        self.__version__ = version
        major = int(version.split('.')[0])
        if major >= 11:     # weak typing removed; EXPLICIT_BATCH gone, so STRONGLY_TYPED is bit 0
            self.BuilderFlag = _enum('BuilderFlag', {'TF32': 'TF32'}, absent=WEAK_TYPING_FLAGS)
            self.NetworkDefinitionCreationFlag = _enum('NetworkDefinitionCreationFlag', {'STRONGLY_TYPED': 0},
                                                       absent=('EXPLICIT_BATCH',))
        else:
            self.BuilderFlag = _enum('BuilderFlag', {'TF32': 'TF32', 'FP16': 'FP16'})
            self.NetworkDefinitionCreationFlag = _enum('NetworkDefinitionCreationFlag',
                                                       {'EXPLICIT_BATCH': 0, 'STRONGLY_TYPED': 1})
        self._major, self._device, self._fail_build = major, device, fail_build
        self._builds = 0
        self._loggers: list = []
        self._warnings: list[str] = []
        fake = self

        class Logger:
            _mirrors = 'Logger'
            WARNING = 2

            def __init__(self, min_severity=WARNING):
                self._severity = min_severity

        def remember(logger) -> None:
            """TensorRT keeps one global logger: a second, different one only gets a warning and is not used."""
            if fake._loggers and logger is not fake._loggers[0]:
                fake._warnings.append('The logger passed into createInferRuntime differs from one already provided '
                                      'for an existing builder, runtime, or refitter.')
            fake._loggers.append(logger)

        class Builder:
            _mirrors = 'Builder'

            def __init__(self, logger):
                remember(logger)

            def create_network(self, flags=0):
                return _Network(fake, flags)

            def create_builder_config(self):
                return _Config(fake)

            def create_optimization_profile(self):
                return _Profile()

            def build_serialized_network(self, network, config):
                fake._builds += 1
                weak = {f for f in config._flags if f in WEAK_TYPING_FLAGS}
                if fake._fail_build or network._model is None or not config._profiles or \
                        (network._strongly_typed and weak):
                    return None
                header = {'version': fake.__version__, 'flags': sorted(config._flags), 'network_flags': network._flags,
                          'strongly_typed': network._strongly_typed, 'graph': graph_float_type(network._model),
                          'graph_sha256': hashlib.sha256(network._model).hexdigest(),
                          'workspace': config._pools.get('WORKSPACE'), 'profile': config._profiles[0]._shapes}
                return memoryview(PLAN_MAGIC + json.dumps(header).encode() + b'\n' + network._model)

        class OnnxParser:
            _mirrors = 'OnnxParser'

            def __init__(self, network, logger):
                remember(logger)
                self._network, self._errors = network, []

            def parse(self, model, path=None):
                problems = check_for_tensorrt(path) if path else []
                self._errors = [_ParserError(f'In node -1 (parseGraph): UNSUPPORTED_NODE: {p}') for p in problems]
                if not self._errors:
                    self._network._model = _with_external_weights(bytes(model), path)
                return not self._errors

            @property
            def num_errors(self):
                return len(self._errors)

            def get_error(self, index):
                return self._errors[index]

        class Runtime:
            _mirrors = 'Runtime'

            def __init__(self, logger):
                remember(logger)

            def deserialize_cuda_engine(self, serialized_engine):
                plan = bytes(serialized_engine)
                if not plan.startswith(PLAN_MAGIC):
                    return None
                header, _, model = plan[len(PLAN_MAGIC):].partition(b'\n')
                try:
                    header = json.loads(header)
                    if header['version'] != fake.__version__:   # TensorRT logs the mismatch and returns None
                        return None
                    return _Engine(model, header['profile'])
                except Exception:       # a damaged plan: TensorRT logs it and returns None
                    return None

        self.Logger, self.Builder, self.OnnxParser, self.Runtime = Logger, Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(trt_type):
        return {'UINT8': np.uint8, 'FLOAT': np.float32, 'HALF': np.float16, 'INT64': np.int64}[trt_type]


def _with_external_weights(model: bytes, path) -> bytes:
    """As the real parser does, read weights kept as ONNX external data from beside `path` into the network."""
    proto = onnx.load_from_string(model)
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return model
    if not path:
        raise ValueError('a graph with external weights needs its path to find them')
    onnx.external_data_helper.load_external_data_for_model(proto, str(Path(path).parent))
    return proto.SerializeToString()


class _Network:
    _mirrors = 'INetworkDefinition'

    def __init__(self, fake: FakeTensorRT, flags: int):
        valid = sum(1 << v for k, v in vars(fake.NetworkDefinitionCreationFlag).items() if not k.startswith('_'))
        if flags & ~valid:
            raise TypeError(f'TensorRT {fake.__version__}: unknown network creation flags {flags:#x}')
        strong_bit = 1 << fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED
        self._flags, self._strongly_typed = flags, fake._major >= 11 or bool(flags & strong_bit)
        self._model = None


class _ParserError:
    _mirrors = 'ParserError'

    def __init__(self, text: str):
        self._text = text

    def __str__(self):
        return self._text


class _TimingCache:
    _mirrors = 'ITimingCache'

    def __init__(self, device: str, entries: int):
        self._device, self._entries = device, entries

    def serialize(self):
        return memoryview(json.dumps({'device': self._device, 'entries': self._entries}).encode())


class _Config:
    _mirrors = 'IBuilderConfig'

    def __init__(self, fake: FakeTensorRT):
        self._fake = fake
        self._flags, self._pools, self._profiles, self._cache = set(), {}, [], None

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[pool] = pool_size

    def set_flag(self, flag):
        self._flags.add(flag)

    def create_timing_cache(self, serialized_timing_cache):
        """An empty buffer makes a fresh cache; otherwise the cache remembers the GPU that wrote it."""
        data = bytes(serialized_timing_cache)
        if not data:
            return _TimingCache(self._fake._device, 0)
        try:
            saved = json.loads(data)
            return _TimingCache(saved['device'], saved['entries'])
        except (ValueError, KeyError):
            return _TimingCache('corrupt', 0)

    def set_timing_cache(self, cache, ignore_mismatch):
        """Refuse a cache from another device unless told to ignore the mismatch (which risks wrong kernels)."""
        if cache._device != self._fake._device and not ignore_mismatch:
            return False
        self._cache = cache
        return True

    def get_timing_cache(self):
        if self._cache is not None:
            self._cache._entries += 1
        return self._cache

    def add_optimization_profile(self, profile):
        for low, opt, high in profile._shapes.values():
            if not all(a <= b <= c for a, b, c in zip(low, opt, high)):
                return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1


class _Profile:
    _mirrors = 'IOptimizationProfile'

    def __init__(self):
        self._shapes = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 (TensorRT's parameter names)
        if not len(min) == len(opt) == len(max):
            raise ValueError('min, opt and max must have the same rank')
        self._shapes[input] = [list(min), list(opt), list(max)]


class _Engine:
    _mirrors = 'ICudaEngine'

    def __init__(self, model: bytes, profile: dict):
        self._session = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
        self._profile = profile
        self._io = [(i.name, 'INPUT', _ort_dtype(i.type)) for i in self._session.get_inputs()] + \
                   [(o.name, 'OUTPUT', _ort_dtype(o.type)) for o in self._session.get_outputs()]
        self._contexts = []

    @property
    def num_io_tensors(self):
        return len(self._io)

    def get_tensor_name(self, index):
        return self._io[index][0]

    def get_tensor_mode(self, name):
        return next(mode for n, mode, _ in self._io if n == name)

    def get_tensor_dtype(self, name):
        return _NP_TO_TRT[next(dtype for n, _, dtype in self._io if n == name)]

    def get_tensor_profile_shape(self, name, profile_index):
        assert profile_index == 0
        return [tuple(s) for s in self._profile[name]]

    def create_execution_context(self, strategy=None):
        self._contexts.append(_Context(self))
        return self._contexts[-1]


class _Context:
    _mirrors = 'IExecutionContext'

    def __init__(self, engine: _Engine):
        self._engine, self._shapes, self._addresses, self._out_shapes = engine, {}, {}, {}
        self._set_shape_calls = 0

    def set_input_shape(self, name, shape):
        self._set_shape_calls += 1
        low, _, high = self._engine._profile[name]
        if len(shape) != len(low) or not all(a <= s <= b for a, s, b in zip(low, shape, high)):
            return False
        self._shapes[name] = tuple(shape)
        self._out_shapes = {}
        return True

    def infer_shapes(self):
        inputs = [n for n, mode, _ in self._engine._io if mode == 'INPUT']
        missing = [n for n in inputs if n not in self._shapes]
        if not missing and not self._out_shapes:   # resolve output shapes once per input-shape change
            zeros = {n: np.zeros(self._shapes[n], d) for n, mode, d in self._engine._io if mode == 'INPUT'}
            outs = self._engine._session.run(None, zeros)
            names = [n for n, mode, _ in self._engine._io if mode == 'OUTPUT']
            self._out_shapes = {n: o.shape for n, o in zip(names, outs)}
        return missing

    def get_tensor_shape(self, name):
        return self._out_shapes.get(name) or (-1,)

    def set_tensor_address(self, name, memory):
        self._addresses[name] = memory
        return True

    def _view(self, name, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = (ctypes.c_uint8 * nbytes).from_address(self._addresses[name])
        return np.frombuffer(raw, np.uint8).view(dtype).reshape(shape)

    def execute_async_v3(self, stream_handle):
        assert stream_handle == 7, 'enqueue must use the backend stream (its address), not the default one'
        io = self._engine._io
        if any(n not in self._addresses for n, _, _ in io):
            return False
        feeds = {n: self._view(n, self._shapes[n], d).copy() for n, mode, d in io if mode == 'INPUT'}
        outs = self._engine._session.run(None, feeds)
        for (name, _, dtype), value in zip([x for x in io if x[1] == 'OUTPUT'], outs):
            self._view(name, value.shape, dtype)[...] = value
        return True


MIRRORED = (_Network, _ParserError, _TimingCache, _Config, _Profile, _Engine, _Context)


def install_fakes(monkeypatch, trt: FakeTensorRT = None, cudart: FakeCudart = None) -> tuple:
    """
    Make `import tensorrt` and `from cuda.bindings import runtime` return the doubles.

    For the code paths that import them by name: the node's configure, `fusion-ros build-engine`
    and training.deploy.build_engines.
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
