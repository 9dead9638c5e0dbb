"""
ONNX Runtime backend: the portable path that works on any machine (CPU, or CUDA if installed).

Memory: ONNX Runtime's CPU arena keeps the largest amount it ever allocated, so one large frame
used to leave a node at several GB for good. The arena stays on (a camera's steady frame size
reuses it, no allocation per frame), but after a run whose input shapes differ from the previous
run's the arena is shrunk (RunOptions memory.enable_memory_arena_shrinkage): a one-off large frame
gives its memory back at once, and the steady size regrows to its own need on the next frame.
"""

from pathlib import Path
from typing import Optional

import numpy as np
import onnxruntime as ort

from fusion_ros.backends.base import Backend, BackendError
from fusion_ros.core.model_card import ModelCard


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; thread count configurable because robots share their CPU."""

    name = 'onnxruntime'

    def __init__(self, model_path: Path, card: ModelCard, threads: int = 0):
        super().__init__(card)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = max(int(threads), 0)
        options.inter_op_num_threads = 1
        providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider')
                     if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f'onnxruntime cannot load {model_path}: {err}') from err
        graph_inputs = {i.name for i in self.session.get_inputs()}
        card_inputs = {t.name for t in card.inputs}
        if graph_inputs != card_inputs:
            raise ValueError(f'{model_path}: graph inputs {sorted(graph_inputs)} differ from its card '
                             f'{sorted(card_inputs)}')
        self.output_names = [t.name for t in card.outputs]
        self._last_shapes: Optional[tuple] = None
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry('memory.enable_memory_arena_shrinkage', 'cpu:0')

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the session; ONNX Runtime errors become BackendError naming the input shapes."""
        shapes = tuple((name, value.shape) for name, value in sorted(inputs.items()))
        changed = self._last_shapes is not None and shapes != self._last_shapes
        self._last_shapes = shapes
        try:
            values = self.session.run(self.output_names, inputs, self._shrink if changed else None)
        except Exception as err:  # onnxruntime raises its own exception types
            shapes = {k: (v.shape, str(v.dtype)) for k, v in inputs.items()}
            raise BackendError(f'onnxruntime failed on inputs {shapes}: {err}') from err
        return dict(zip(self.output_names, values))

    def close(self) -> None:
        """Drop the session."""
        self.session = None
