"""
PyTorch backend: the fusion networks themselves (fusion_ros.networks), for GPUs without TensorRT (and for CPUs).

It rebuilds the graph the card describes (uint8 end-to-end or float) from
fusion_ros.networks (the wrappers training.deploy.export exported) and the exported weights, so it computes
exactly what was exported. The weights are read from the ONNX graph itself (its initializers keep the
network's parameter names; card entry ``torch_weights.graph_prefix``), so they ship once; only a
model whose graph folded some of them away at export (a segmenter's BatchNorm) keeps ``<model>.pt``
beside it, pinned by sha256 in the card. On CUDA it runs under fp16 autocast and, for a fixed
input size, replays a captured CUDA graph (re-captured when the size changes); on CPU it runs
eagerly in fp32. It needs torch and onnx (to read the graph) and nothing from training/, so it
works from a colcon install space.
"""

from pathlib import Path
from typing import Optional

import numpy as np

from fusion_ros.backends.base import Backend, BackendError
from fusion_ros.core.model_card import ModelCard, sha256_of

PRECISIONS = ('fp16', 'fp32')


GRAPH_PREFIX = 'core.net.'   # where the exported wrappers (FloatGraph, Uint8Graph) keep the network


def weights_path(model_path: Path) -> Path:
    """Return where export writes the PyTorch weights of a uint8 graph (its float twin's card names the same file)."""
    return Path(model_path).with_suffix('.pt')


def state_from_graph(graph_path: Path, template: dict, prefix: str = GRAPH_PREFIX) -> Optional[dict]:
    """
    Read the network's state dict from the graph's initializers named ``prefix + key``; None if one is missing.

    ``template`` is the network's own state dict (names and shapes). Two gaps are filled from it:
    BatchNorm's batch counter, which no graph holds and eval mode never reads, and a fixed tensor
    (a Sobel kernel) that the ONNX exporter merged into an identical one under another name: the
    template's value is taken when the graph holds those very bytes. The exporter writes a card
    that points here only after checking the result against the trained weights.
    """
    import onnx
    from onnx import numpy_helper
    import torch
    arrays = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(graph_path)).graph.initializer}
    held = {(a.dtype.str, a.shape, a.tobytes()) for a in arrays.values()}
    state = {}
    for key, value in template.items():
        array = arrays.get(prefix + key)
        if array is None:
            own = value.cpu().numpy()
            if not (key.endswith('num_batches_tracked') or (own.dtype.str, own.shape, own.tobytes()) in held):
                return None
            state[key] = value
        elif tuple(array.shape) != tuple(value.shape):
            return None
        else:
            state[key] = torch.from_numpy(array.copy())
    return state


def weights_in_graph(graph_path: Path, method: str, state: dict) -> bool:
    """
    Tell whether the loader reads exactly ``state`` back from the graph (checked before a card relies on it).

    The template is a fresh network, as the loader's is: a tensor the exporter merged away is only
    recovered when it is a fixed one, never a trained value that happens to equal another. BatchNorm's
    batch counter is not compared (eval mode never reads it).
    """
    import torch
    from fusion_ros.networks.registry import build_model
    found = state_from_graph(graph_path, build_model(method).state_dict())
    return found is not None and found.keys() == state.keys() and \
        all(torch.equal(found[k], v.cpu()) for k, v in state.items() if not k.endswith('num_batches_tracked'))


def exported_weights(model_path: Path, card: ModelCard) -> dict:
    """
    Return the {'method', 'model'[, 'segmenter', 'classes']} state dicts an exported model runs with.

    Read from the graph when the card says its initializers hold them (the graph's sha256 is the
    card's), else from the .pt file the card pins. Training's ``init_from`` takes them too.
    """
    import torch
    from fusion_ros.networks.registry import build_model
    model_path = Path(model_path)
    pinned = card.provenance.get('torch_weights')
    if not pinned:
        raise ValueError(f'the card of {model_path.name} names no PyTorch weights; re-export the model')
    if 'graph_prefix' in pinned:
        state = state_from_graph(model_path, build_model(card.method).state_dict(), pinned['graph_prefix'])
        if state is None:
            raise ValueError(f'{model_path.name} lacks weights its card says it holds; re-export the model')
        return {'method': card.method, 'model': state}
    path = model_path.parent / pinned['file']
    if not path.is_file():
        raise FileNotFoundError(f'PyTorch weights not found: {path} (written by training.deploy.export beside '
                                'the ONNX)')
    if pinned.get('sha256') != sha256_of(path):
        raise ValueError(f'{path} does not match the sha256 in the card of {model_path.name}; re-export the model')
    return torch.load(path, map_location='cpu', weights_only=True)


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
        """Rebuild the exported wrapper around the exported weights (checked against the card)."""
        from fusion_ros.networks.graphs import core_from_weights, FloatGraph, Uint8Graph
        wrapper = Uint8Graph if self.card.graph == 'uint8' else FloatGraph
        return wrapper(core_from_weights(exported_weights(model_path, self.card))).eval()

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
