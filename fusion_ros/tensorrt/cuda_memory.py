"""
The few CUDA runtime calls the TensorRT backend needs, through cuda-python's cudart.

Kept behind this small class so that the backend's buffer logic reads as plain
Python, and so that tests can give the backend a host-memory stand-in (no GPU
exists on the development machines). Every cudart call returns ``(err, *values)``;
a non-zero err raises with the call's name (tensorrt.md section 2).
"""

import ctypes
from typing import Any

import numpy as np


def import_cudart() -> Any:
    """cuda-python's runtime module under either import path (10.0-10.13 samples vs 10.16 / JetPack 7)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise ImportError('the TensorRT backend needs cuda-python (pip install cuda-python; on a Jetson use '
                              "the version matching JetPack's CUDA)") from None
    return cudart


class CudaRuntime:
    """Device and pinned host allocations, async copies and one stream."""

    def __init__(self, cudart: Any = None):
        self.cudart = cudart or import_cudart()

    def _check(self, name: str, result: Any) -> Any:
        """Unpack (err, *values), raising RuntimeError on a CUDA error."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f'CUDA {name} failed: {err}')
        return values[0] if len(values) == 1 else values

    def stream(self) -> int:
        """Create a CUDA stream for the backend alone; the default stream is never used."""
        return int(self._check('cudaStreamCreate', self.cudart.cudaStreamCreate()))

    def device_alloc(self, nbytes: int) -> int:
        """Device buffer address."""
        return int(self._check('cudaMalloc', self.cudart.cudaMalloc(max(nbytes, 1))))

    def host_alloc(self, nbytes: int, dtype: np.dtype) -> tuple[int, np.ndarray]:
        """Pinned host buffer as (address, flat numpy view of nbytes bytes)."""
        address = int(self._check('cudaMallocHost', self.cudart.cudaMallocHost(max(nbytes, 1))))
        raw = (ctypes.c_uint8 * max(nbytes, 1)).from_address(address)
        return address, np.frombuffer(raw, np.uint8)[:nbytes].view(dtype)

    def to_device(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Async host -> device copy on the stream."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check('cudaMemcpyAsync', self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def to_host(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Async device -> host copy on the stream."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check('cudaMemcpyAsync', self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def synchronize(self, stream: int) -> None:
        """Wait for the stream."""
        self._check('cudaStreamSynchronize', self.cudart.cudaStreamSynchronize(stream))

    def free_device(self, address: int) -> None:
        """Release a device buffer."""
        self._check('cudaFree', self.cudart.cudaFree(address))

    def free_host(self, address: int) -> None:
        """Release a pinned host buffer."""
        self._check('cudaFreeHost', self.cudart.cudaFreeHost(address))

    def destroy_stream(self, stream: int) -> None:
        """Release the stream."""
        self._check('cudaStreamDestroy', self.cudart.cudaStreamDestroy(stream))

    def device_identity(self) -> tuple[str, str]:
        """(GPU name, compute capability 'major.minor') of device 0, for the engine cache key."""
        props = self._check('cudaGetDeviceProperties', self.cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip('\0'), f'{props.major}.{props.minor}'
