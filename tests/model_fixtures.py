"""Build a small exported model once per test session (seeded, untrained: parity does not need training)."""

from pathlib import Path

import torch

from training.common.checkpoint import save_checkpoint
from training.common.config import TrainConfig, config_to_dict
from fusion_ros.evaluation.mask_io import BOX_CLASSES
from training.deploy.export import export
from fusion_ros.networks.registry import build_model
from fusion_ros.networks.segmenter import Segmenter

PAIRS = Path(__file__).parent / 'data' / 'pairs'


def export_seeded_model(folder: Path, sample_limit: int = 2, method: str = 'seafusion',
                        segmenter: bool = False) -> tuple[Path, Path]:
    """Return (uint8 graph, float graph) paths of a seeded network (plus segmenter) exported into folder."""
    torch.manual_seed(0)
    state = {'model': build_model(method).state_dict(), 'config': config_to_dict(TrainConfig(method=method)),
             'step': 0, 'config_path': 'seeded-test-model'}
    if segmenter:
        state.update(segmenter=Segmenter(len(BOX_CLASSES)).eval().state_dict(), classes=list(BOX_CLASSES))
    ckpt = folder / f'seeded_{method}.pt'
    save_checkpoint(ckpt, state)
    name = method + ('_seg' if segmenter else '')
    return export(ckpt, folder / f'{name}.onnx', PAIRS, sample_limit=sample_limit)


def write_tiny_model(folder: Path, name: str, fused_node, extra_nodes=(), extra_outputs=(), mask=None) -> Path:
    """
    Write a small hand-built uint8 graph (ir, visible_bgr -> fused_bgr [, mask]) and its card.

    These are real ONNX models run by real ONNX Runtime; they give the node tests outputs whose
    exact content is known (a mask from a threshold) or a genuine runtime failure (a fixed Reshape).
    """
    from onnx import TensorProto, helper, save

    from fusion_ros.core.model_card import ModelCard, save_card, sha256_of
    from training.deploy.export import uint8_specs
    inputs = [helper.make_tensor_value_info('ir', TensorProto.UINT8, ['H', 'W']),
              helper.make_tensor_value_info('visible_bgr', TensorProto.UINT8, ['H', 'W', 3])]
    outputs = [helper.make_tensor_value_info('fused_bgr', TensorProto.UINT8, ['H', 'W', 3]), *extra_outputs]
    graph = helper.make_graph([*extra_nodes, fused_node], name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=9)
    path = Path(folder) / f'{name}.onnx'
    save(model, str(path))
    u_in, u_out = uint8_specs()
    if mask:
        from fusion_ros.core.model_card import TensorSpec
        u_out = (*u_out, TensorSpec(mask['output'], 'HW', 'uint8', (0.0, 255.0), 'class ids'))
    card = ModelCard(method=name, version='test', graph='uint8', onnx=path.name, sha256=sha256_of(path), opset=17,
                     inputs=u_in, outputs=u_out, mask=mask)
    save_card(card, path.with_suffix('.json'))
    return path


def threshold_mask_model(folder: Path) -> Path:
    """Fused = visible, mask = 1 where IR > 127: a model with a mask output whose content is known."""
    from onnx import TensorProto, helper
    nodes = [helper.make_node('Constant', [], ['t'], value=helper.make_tensor('t', TensorProto.UINT8, [], [127])),
             helper.make_node('Greater', ['ir', 't'], ['hot']),
             helper.make_node('Cast', ['hot'], ['mask'], to=TensorProto.UINT8)]
    return write_tiny_model(folder, 'threshold', helper.make_node('Identity', ['visible_bgr'], ['fused_bgr']),
                            nodes, [helper.make_tensor_value_info('mask', TensorProto.UINT8, ['H', 'W'])],
                            mask={'output': 'mask', 'classes': ['background', 'hot']})


def fixed_size_model(folder: Path) -> Path:
    """Fused = visible reshaped to 480x640x3: any other frame size makes ONNX Runtime fail for real."""
    from onnx import TensorProto, helper
    shape = helper.make_node('Constant', [], ['shape'],
                             value=helper.make_tensor('shape', TensorProto.INT64, [3], [480, 640, 3]))
    return write_tiny_model(folder, 'fixed_size', helper.make_node('Reshape', ['visible_bgr', 'shape'], ['fused_bgr']),
                            [shape])


def frame(h: int, w: int, seed: int = 0):
    """Random (IR (H, W), visible BGR (H, W, 3)) uint8 frames."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8)


def random_feeds(card, h: int, w: int) -> dict:
    """Random inputs of the card's graph kind: uint8 IR + BGR, or float (1, 1, H, W) planes."""
    import numpy as np
    if card.graph == 'float':
        rng = np.random.default_rng(0)
        return {'visible_y': rng.random((1, 1, h, w), np.float32), 'ir': rng.random((1, 1, h, w), np.float32)}
    ir, vis = frame(h, w)
    return {'ir': ir, 'visible_bgr': vis}
