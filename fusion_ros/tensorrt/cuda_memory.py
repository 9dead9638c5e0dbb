"""
The few CUDA runtime calls the TensorRT backend needs, through cuda-python's cudart.

Kept behind this small class so that the backend's buffer logic reads as plain
Python, and so that tests can give the backend a host-memory stand-in (no GPU
exists on the development machines). Every cudart call returns ``(err, *values)``;
a failing call returns ``(err, None)`` (cuda-bindings 12 and 13), so err is checked
before any value is used, and the error raised names the call, the CUDA error and,
when the driver is the cause, what to install (tensorrt.md sections 2 and 11).
"""

import ctypes
from typing import Any

import numpy as np

# Errors that mean "no usable driver/GPU", not a bug in the call: the message says what to install.
DRIVER_ERRORS = ('cudaErrorInsufficientDriver', 'cudaErrorNoDevice', 'cudaErrorCompatNotSupportedOnDevice',
                 'cudaErrorSystemDriverMismatch')
INSTALL_HINT = ('cuda-python must match the driver: requirements/gpu-x86-cuda12.txt pins cuda-python 12.x for a '
                'CUDA 12 driver (r525 or newer); cuda-python 13 needs an r580+ driver; on a Jetson use the '
                "cuda-python matching JetPack's CUDA (requirements/jetson-jp6.txt)")


def import_cudart() -> Any:
    """cuda-python's runtime module under either import path (10.0-10.13 samples vs 10.16 / JetPack 7)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise ImportError('the TensorRT backend needs cuda-python: pip install -r requirements/gpu-x86-cuda12.txt '
                              '(x86, CUDA 12 driver) or requirements/jetson-jp6.txt (JetPack 6)') from None
    return cudart


def stream_address(stream: Any) -> int:
    """
    Return the CUstream address of a cudart stream, as TensorRT's execute_async_v3 wants it.

    cuda-python 12.9+ streams implement the CUDA stream protocol (``__cuda_stream__`` ->
    (version, address)); ``int(stream)`` is deprecated there, and used only for older
    cuda-python (JetPack 6's 12.6), where it is the documented way.
    """
    if isinstance(stream, int):
        return stream
    protocol = getattr(stream, '__cuda_stream__', None)
    return int(protocol()[1]) if protocol is not None else int(stream)


class CudaError(RuntimeError):
    """A cudart call failed; the message names the call and the CUDA error."""


class CudaRuntime:
    """Device and pinned host allocations, async copies and one stream."""

    def __init__(self, cudart: Any = None):
        self.cudart = cudart or import_cudart()

    def _error_text(self, name: str, err: Any) -> str:
        """'CUDA <call> failed: <error name>', plus what to install when the driver is the cause."""
        label = getattr(err, 'name', None) or f'error {int(err)}'
        text = f'CUDA {name} failed: {label}'
        if label in DRIVER_ERRORS:
            driver = self.cudart.cudaDriverGetVersion()
            runtime = self.cudart.cudaRuntimeGetVersion()
            have = driver[1] if int(driver[0]) == 0 else 0
            need = runtime[1] if int(runtime[0]) == 0 else 0
            found = (f'the driver supports CUDA {have // 1000}.{have % 1000 // 10}' if have
                     else 'no NVIDIA driver was found (install one)')
            text += (f': {found}, this cuda-python carries the CUDA {need // 1000}.{need % 1000 // 10} runtime; '
                     f'{INSTALL_HINT}')
        return text

    def _check(self, name: str, result: Any) -> Any:
        """Unpack (err, *values), raising CudaError on a CUDA error (values are then None)."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise CudaError(self._error_text(name, err))
        return values[0] if len(values) == 1 else values

    def stream(self) -> Any:
        """Create a CUDA stream for the backend alone (the default stream is never used); cudart's handle."""
        return self._check('cudaStreamCreate', self.cudart.cudaStreamCreate())

    def device_alloc(self, nbytes: int) -> int:
        """Device buffer address."""
        return int(self._check('cudaMalloc', self.cudart.cudaMalloc(max(nbytes, 1))))

    def host_alloc(self, nbytes: int, dtype: np.dtype) -> tuple[int, np.ndarray]:
        """Pinned host buffer as (address, flat numpy view of nbytes bytes)."""
        address = int(self._check('cudaMallocHost', self.cudart.cudaMallocHost(max(nbytes, 1))))
        raw = (ctypes.c_uint8 * max(nbytes, 1)).from_address(address)
        return address, np.frombuffer(raw, np.uint8)[:nbytes].view(dtype)

    def to_device(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Async host -> device copy on the stream."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check('cudaMemcpyAsync', self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def to_host(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Async device -> host copy on the stream."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check('cudaMemcpyAsync', self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def synchronize(self, stream: Any) -> None:
        """Wait for the stream."""
        self._check('cudaStreamSynchronize', self.cudart.cudaStreamSynchronize(stream))

    def free_device(self, address: int) -> None:
        """Release a device buffer."""
        self._check('cudaFree', self.cudart.cudaFree(address))

    def free_host(self, address: int) -> None:
        """Release a pinned host buffer."""
        self._check('cudaFreeHost', self.cudart.cudaFreeHost(address))

    def destroy_stream(self, stream: Any) -> None:
        """Release the stream."""
        self._check('cudaStreamDestroy', self.cudart.cudaStreamDestroy(stream))

    def device_identity(self) -> tuple[str, str]:
        """(GPU name, compute capability 'major.minor') of device 0, for the engine cache key."""
        props = self._check('cudaGetDeviceProperties', self.cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip('\0'), f'{props.major}.{props.minor}'
