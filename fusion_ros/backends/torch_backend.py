"""
PyTorch backend: the fusion networks themselves (fusion_ros.networks), for GPUs without TensorRT (and for CPUs).

It rebuilds the graph the card describes (uint8 end-to-end or float) from
fusion_ros.networks (the wrappers training.export exported) and the weights saved beside the ONNX file
(``<model>.pt``, pinned by sha256 in the card), so it computes exactly what
was exported. On CUDA it runs under fp16 autocast and, for a fixed input size,
replays a captured CUDA graph (re-captured when the size changes); on CPU it
runs eagerly in fp32. It needs torch and nothing from training/, so it works
from a colcon install space.
"""

from pathlib import Path
from typing import Optional

import numpy as np

from fusion_ros.backends.base import Backend, BackendError
from fusion_ros.core.model_card import ModelCard, sha256_of

PRECISIONS = ('fp16', 'fp32')


def weights_path(model_path: Path) -> Path:
    """Return where export writes the PyTorch weights of a uint8 graph (its float twin's card names the same file)."""
    return Path(model_path).with_suffix('.pt')


class TorchBackend(Backend):
    """Eager PyTorch (CPU) or fp16 autocast + CUDA graphs (GPU) over the card's graph."""

    name = 'torch'

    def __init__(self, model_path: Path, card: ModelCard, threads: int = 0, precision: str = 'fp16',
                 device: str = 'auto', cuda_graphs: bool = True):
        super().__init__(card)
        import torch
        self.torch = torch
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but torch {torch.__version__} sees no CUDA device')
        self.device = torch.device(device)
        if threads and self.device.type == 'cpu':
            torch.set_num_threads(threads)
        self.fp16 = precision == 'fp16' and self.device.type == 'cuda'   # CPU stays fp32 (no fast fp16 there)
        self.use_graphs = cuda_graphs and self.device.type == 'cuda'
        self.graph = self._load(Path(model_path)).to(self.device)
        self.input_names = [t.name for t in card.inputs]
        self.output_names = [t.name for t in card.outputs]
        self._captured: Optional[tuple] = None   # (shapes, CUDAGraph, static inputs, static outputs)

    def _load(self, model_path: Path):
        """Rebuild the exported wrapper around the saved weights, after checking them against the card."""
        from fusion_ros.networks.graphs import core_from_weights, FloatGraph, Uint8Graph
        pinned = self.card.provenance.get('torch_weights')
        if not pinned:
            raise ValueError(f'the card of {model_path.name} names no PyTorch weights; re-export the model')
        path = model_path.parent / pinned['file']
        if not path.is_file():
            raise FileNotFoundError(f'PyTorch weights not found: {path} (written by training.export beside the ONNX)')
        if pinned.get('sha256') != sha256_of(path):
            raise ValueError(f'{path} does not match the sha256 in the card of {model_path.name}; re-export the model')
        core = core_from_weights(self.torch.load(path, map_location='cpu', weights_only=True))
        return (Uint8Graph if self.card.graph == 'uint8' else FloatGraph)(core).eval()

    def _forward(self, tensors: list):
        """One forward pass under inference mode (and fp16 autocast on CUDA)."""
        with self.torch.inference_mode(), self.torch.autocast('cuda', dtype=self.torch.float16, enabled=self.fp16):
            out = self.graph(*tensors)
        return out if isinstance(out, tuple) else (out,)

    def _replay(self, arrays: list[np.ndarray]):
        """Copy into the captured graph's static inputs and replay it; capture first for a new size."""
        torch = self.torch
        shapes = tuple(a.shape for a in arrays)
        if self._captured is None or self._captured[0] != shapes:
            static_in = [torch.from_numpy(a).to(self.device) for a in arrays]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):                       # warm-up outside the graph (cuDNN autotuning, allocator)
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_in)
            self._captured = (shapes, graph, static_in, static_out)
        _, graph, static_in, static_out = self._captured
        for tensor, array in zip(static_in, arrays):
            tensor.copy_(torch.from_numpy(array), non_blocking=False)
        graph.replay()
        return static_out

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the card's graph; errors inside PyTorch become BackendError naming the input shapes."""
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ValueError(f'missing input(s) {sorted(missing)}')
        arrays = [np.ascontiguousarray(inputs[n]) for n in self.input_names]
        try:
            if self.use_graphs:
                out = self._replay(arrays)
            else:
                out = self._forward([self.torch.from_numpy(a).to(self.device) for a in arrays])
            values = [t.float().cpu().numpy() if t.dtype == self.torch.float16 else t.cpu().numpy() for t in out]
        except RuntimeError as err:
            shapes = {n: (a.shape, str(a.dtype)) for n, a in zip(self.input_names, arrays)}
            raise BackendError(f'torch failed on inputs {shapes}: {err}') from err
        return dict(zip(self.output_names, values))

    def describe(self) -> str:
        """Backend, model, graph and where / how it runs."""
        mode = ('fp16' if self.fp16 else 'fp32') + ('+cudagraphs' if self.use_graphs else '')
        return f'{super().describe()} on {self.device.type} {mode}'

    def close(self) -> None:
        """Drop the graph, the captured CUDA graph and cached device memory."""
        self._captured = None
        self.graph = None
        if self.device.type == 'cuda':
            self.torch.cuda.empty_cache()
