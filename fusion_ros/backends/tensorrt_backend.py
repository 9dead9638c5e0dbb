"""
TensorRT backend: a deserialized plan, one execution context, one CUDA stream.

Per frame: input shapes are set only when they change (that is when TensorRT
re-plans), device and pinned host buffers are reused and only grow, inputs go
host -> device asynchronously, the engine is enqueued, outputs come back
asynchronously, and the stream is synchronised once. With the uint8 end-to-end
graphs the CPU copies bytes only. Written against the name-based runtime API
that TensorRT 10 and 11 share (tensorrt.md section 2); ``trt`` and ``cuda`` are
injectable so that CI runs this exact code against a test double, and the calls
are checked against the real bindings of each version (tests/test_trt_conformance.py).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from fusion_ros.backends.base import Backend, BackendError
from fusion_ros.core.model_card import ModelCard
from fusion_ros.tensorrt.builder import deserialize, import_tensorrt
from fusion_ros.tensorrt.cuda_memory import CudaRuntime, stream_address

MISMATCH_HINT = ('a plan only runs on the TensorRT version and GPU it was built with; rebuild it with '
                 '`fusion-ros build-engine` on this machine (the node does so in configure when '
                 'engine.allow_rebuild is true)')


@dataclass
class _Buffer:
    """A device buffer and its pinned host twin, reused while frames fit."""

    device: int
    host_address: int
    host: np.ndarray     # flat pinned view, capacity elements
    capacity: int        # bytes


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT plan whose I/O tensors are those of the model card."""

    name = 'tensorrt'

    def __init__(self, plan_path: Path, card: ModelCard, trt: Any = None, cuda: Optional[CudaRuntime] = None,
                 engine: Any = None):
        """Load the plan (or take the engine fusion_ros.tensorrt.builder.ensure_engine already deserialized)."""
        super().__init__(card)
        self.trt = trt or import_tensorrt()
        self.cuda = cuda or CudaRuntime()
        self.engine = engine if engine is not None else deserialize(self.trt, plan_path)
        if self.engine is None:
            raise ValueError(f'TensorRT {self.trt.__version__} cannot deserialize {plan_path}: {MISMATCH_HINT}')
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == self.trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        expected = ({t.name for t in card.inputs}, {t.name for t in card.outputs})
        if (set(self.inputs), set(self.outputs)) != expected:
            raise ValueError(f'{plan_path}: engine tensors {sorted(self.inputs)} -> {sorted(self.outputs)} differ '
                             f'from the card {sorted(expected[0])} -> {sorted(expected[1])}')
        self.dtypes = {n: np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.limits = {n: self.engine.get_tensor_profile_shape(n, 0) for n in self.inputs}
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.stream()
        self.stream_address = stream_address(self.stream)
        self.buffers: dict[str, _Buffer] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.reshapes = 0     # how often input shapes changed (each change makes TensorRT re-plan)

    def _check_input(self, name: str, array: np.ndarray) -> None:
        """Dtype and the optimisation profile's range, checked before TensorRT sees the shape."""
        if array.dtype != self.dtypes[name]:
            raise ValueError(f'input {name!r} must be {self.dtypes[name]}, got {array.dtype}')
        low, _, high = (tuple(d) for d in self.limits[name])
        if len(array.shape) != len(low) or any(not lo <= s <= hi for s, lo, hi in zip(array.shape, low, high)):
            raise ValueError(f'input {name!r} of shape {array.shape} is outside the engine profile '
                             f'{low}..{high}; rebuild the engine with a wider engine.profile')

    def _buffer(self, name: str, nbytes: int) -> _Buffer:
        """Return the tensor's buffers, reallocated (and re-bound) only when a frame outgrows them."""
        buf = self.buffers.get(name)
        if buf is None or buf.capacity < nbytes:
            if buf is not None:
                self._free(buf)
            device = self.cuda.device_alloc(nbytes)
            address, host = self.cuda.host_alloc(nbytes, np.uint8)
            buf = self.buffers[name] = _Buffer(device, address, host, nbytes)
            self.context.set_tensor_address(name, device)
        return buf

    def _set_shapes(self, inputs: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        """Tell the context new input shapes (only on change); returns the output shapes."""
        for name in self.inputs:
            shape = tuple(inputs[name].shape)
            if self.shapes.get(name) != shape:
                if not self.context.set_input_shape(name, shape):
                    raise BackendError(f'TensorRT rejected shape {shape} for input {name!r}')
                self.shapes[name] = shape
                self.reshapes += 1
        missing = self.context.infer_shapes()
        if missing:
            raise BackendError(f'TensorRT could not infer the shapes of {missing}')
        return {n: tuple(self.context.get_tensor_shape(n)) for n in self.outputs}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy in, enqueue, copy out on one stream; returns fresh arrays (the buffers are reused)."""
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ValueError(f'missing input(s) {sorted(missing)}')
        for name in self.inputs:
            self._check_input(name, inputs[name])
        out_shapes = self._set_shapes(inputs)
        for name in self.inputs:
            array = np.ascontiguousarray(inputs[name])
            buf = self._buffer(name, array.nbytes)
            buf.host[:array.nbytes] = array.reshape(-1).view(np.uint8)
            self.cuda.to_device(buf.device, buf.host_address, array.nbytes, self.stream)
        sizes = {n: int(np.prod(s)) * self.dtypes[n].itemsize for n, s in out_shapes.items()}
        out_buffers = {n: self._buffer(n, sizes[n]) for n in self.outputs}
        if not self.context.execute_async_v3(self.stream_address):
            raise BackendError('TensorRT execute_async_v3 failed (see the TensorRT log)')
        for name, buf in out_buffers.items():
            self.cuda.to_host(buf.host_address, buf.device, sizes[name], self.stream)
        self.cuda.synchronize(self.stream)
        return {n: buf.host[:sizes[n]].view(self.dtypes[n]).reshape(out_shapes[n]).copy()
                for n, buf in out_buffers.items()}

    def _free(self, buf: _Buffer) -> None:
        self.cuda.free_device(buf.device)
        self.cuda.free_host(buf.host_address)

    def close(self) -> None:
        """Free buffers and the stream; the context and engine go with their Python references."""
        for buf in self.buffers.values():
            self._free(buf)
        self.buffers.clear()
        if self.stream is not None:
            self.cuda.destroy_stream(self.stream)
            self.stream = None
        self.context = self.engine = None
