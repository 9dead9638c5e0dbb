"""
fp16 graphs for TensorRT's strongly typed builds, derived from the model's graph where the engine is built.

The conversion (why and how: training/deploy/fp16.py, which validates it at export):

* graph inputs and outputs keep their types (uint8 I/O unchanged; a float graph keeps float
  I/O, cast at the edges); float weights and Constant values become fp16 (clamped to its
  range), Cast(to=FLOAT) becomes Cast(to=FLOAT16), so every float op computes in half precision;
* ops a network keeps in fp32 stay fp32, with Casts at their borders (the op types and node-name
  prefixes the model card's ``provenance.fp16`` names), and inputs ONNX requires to be float
  (Resize's roi and scales).

The conversion is deterministic: the same graph and onnx version give the same bytes, so the file
derived on a vehicle is the very graph the exporter validated, checked by the sha256 its card pins.
Models therefore ship without their fp16 twin (each set of weights ships once); ``derive_fp16``
writes it into the engine folder when a precision-fp16 build needs it.
"""

import copy
from dataclasses import dataclass
import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fusion_ros.core.model_card import ModelCard, sha256_of
from fusion_ros.tensorrt.plan_store import write_atomic

FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
FP16_MAX, FP16_TINY = 65504.0, 2.0 ** -24          # largest finite and smallest subnormal half
FLOAT_ONLY_INPUTS = {'Resize': (1, 2), 'Upsample': (1,)}   # roi / scales: ONNX types them float


@dataclass(frozen=True)
class Fp32Keep:
    """Which nodes an fp16 graph computes in fp32: by op type, or by name prefix (the torch module path)."""

    op_types: tuple[str, ...] = ()
    node_prefixes: tuple[str, ...] = ()

    def keeps(self, node: onnx.NodeProto) -> bool:
        """Tell whether a node must stay fp32."""
        return node.op_type in self.op_types or node.name.startswith(self.node_prefixes or ('\0',))


def to_half(values: np.ndarray) -> np.ndarray:
    """float32 -> float16, clamped so nothing becomes inf and no non-zero becomes 0."""
    clipped = np.clip(values, -FP16_MAX, FP16_MAX)
    tiny = (clipped != 0) & (np.abs(clipped) < FP16_TINY)
    return np.where(tiny, np.sign(clipped) * FP16_TINY, clipped).astype(np.float16)


def _lift_constants(graph: onnx.GraphProto) -> None:
    """Float Constant nodes become initializers, so every float source is converted in one place."""
    nodes = []
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == 'value'), None)
        if node.op_type == 'Constant' and value is not None and value.data_type == FLOAT:
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value), node.output[0]))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor, from ONNX shape inference; every node output must have a known type."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.value_info, *graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    untyped = [o for n in graph.node for o in n.output if o and o not in types]
    if untyped:
        raise ValueError(f'ONNX shape inference gives no type for {untyped[:5]}; cannot convert to fp16')
    return types


class _Converter:
    """
    One pass over the nodes in topological order, choosing each float tensor's precision per consumer.

    With ``emulate`` the graph stays fp32 but every tensor the fp16 graph would hold in half
    precision is rounded through FLOAT16 and back (weights too): ONNX Runtime on a CPU runs the
    ops it has no fp16 kernel for in fp32 and drops the casts between them, so the real fp16
    file would hide an overflow there; explicit round trips cannot be dropped.
    """

    def __init__(self, model: onnx.ModelProto, keep: Fp32Keep, emulate: bool = False):
        self.model, self.keep, self.emulate = model, keep, emulate
        self.graph = model.graph
        self.types = _tensor_types(model)
        self.floats = {name for name, elem in self.types.items() if elem == FLOAT}
        self.inits = {i.name: i for i in self.graph.initializer}
        self.half: set[str] = set()                 # tensors held in half precision
        self.variants: dict[tuple[str, bool], str] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.kept = 0

    def _values(self, values: np.ndarray) -> np.ndarray:
        """Weights as the fp16 graph holds them (rounded fp32 values when emulating)."""
        half = to_half(values)
        return half.astype(np.float32) if self.emulate else half

    def _to_half(self, source: str, target: str) -> None:
        """Make `target` the half-precision copy of `source`."""
        if self.emulate:
            self.nodes += [helper.make_node('Cast', [source], [f'{target}__h'], name=f'{target}__h_cast', to=HALF),
                           helper.make_node('Cast', [f'{target}__h'], [target], name=f'{target}_cast', to=FLOAT)]
        else:
            self.nodes.append(helper.make_node('Cast', [source], [target], name=f'{target}_cast', to=HALF))

    def tensor(self, name: str, half: bool) -> str:
        """Return the name under which `name` exists in the wanted precision (a converted weight or a Cast)."""
        if name not in self.floats or (name in self.inits and not half):
            return name     # not float, or a weight wanted as it is (weights start as fp32)
        if name not in self.inits and (half == (name in self.half) or (self.emulate and not half)):
            return name     # already in that precision (rounded values are valid fp32 too)
        key = (name, half)
        if key not in self.variants:
            new = self.variants[key] = f'{name}__{"fp16" if half else "fp32"}'
            if name in self.inits:
                self.graph.initializer.append(numpy_helper.from_array(
                    self._values(numpy_helper.to_array(self.inits[name])), new))
            elif half:
                self._to_half(name, new)
            else:
                self.nodes.append(helper.make_node('Cast', [name], [new], name=f'{new}_cast', to=FLOAT))
        return self.variants[key]

    def node(self, node: onnx.NodeProto) -> None:
        """
        Retype one node: inputs in its precision, float outputs in half precision unless kept.

        A Cast takes its input as it is. Its FLOAT target becomes FLOAT16 only for image data
        (a uint8 or float source): integer sources (shape arithmetic, class ids) stay FLOAT, exact
        where half precision is not (sizes above 2048), and consumers get a Cast of their own.
        """
        kept = self.keep.keeps(node)
        self.kept += kept
        cast = node.op_type == 'Cast'
        for i, name in enumerate(node.input):
            if name and not cast:
                node.input[i] = self.tensor(name, not kept and i not in FLOAT_ONLY_INPUTS.get(node.op_type, ()))
        to = next((a for a in node.attribute if a.name == 'to'), None)
        image_cast = cast and to.i == FLOAT and self.types.get(node.input[0]) in (onnx.TensorProto.UINT8, FLOAT, HALF)
        if kept or (cast and not image_cast):
            self.nodes.append(node)
            return
        if image_cast and not self.emulate:
            to.i = HALF
        for attr in node.attribute:
            if node.op_type == 'ConstantOfShape' and attr.name == 'value' and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(self._values(numpy_helper.to_array(attr.t)), attr.t.name))
        outputs = [o for o in node.output if o in self.floats]
        if self.emulate:
            for i, name in enumerate(node.output):
                if name in outputs:
                    node.output[i] = f'{name}__exact'
        self.nodes.append(node)
        for name in outputs:
            if self.emulate:
                self._to_half(f'{name}__exact', name)
            self.half.add(name)

    def run(self) -> onnx.ModelProto:
        """Convert all nodes, keep float graph outputs float, drop weights nobody reads any more."""
        outputs = {o.name for o in self.graph.output if o.name in self.floats}
        for node in self.graph.node:          # float outputs are produced under a new name, then cast back
            for i, name in enumerate(node.output):
                if name in outputs:
                    node.output[i] = f'{name}__graph_output'
            for i, name in enumerate(node.input):
                if name in outputs:
                    node.input[i] = f'{name}__graph_output'
        self.floats |= {f'{name}__graph_output' for name in outputs}
        for node in list(self.graph.node):
            self.node(node)
        for name in outputs:
            self.nodes.append(helper.make_node('Identity', [self.tensor(f'{name}__graph_output', False)], [name]))
        used = {i for n in self.nodes for i in n.input}
        keep_inits = [i for i in self.graph.initializer if i.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep_inits)
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        del self.graph.value_info[:]
        return self.model


def convert(model: onnx.ModelProto, keep: Fp32Keep = Fp32Keep(), emulate: bool = False) -> tuple[onnx.ModelProto, int]:
    """
    Return (fp16 copy of model, number of nodes kept in fp32); the input model is not changed.

    ``emulate`` gives the fp32 graph that computes what the fp16 one stores (see _Converter).
    """
    model = copy.deepcopy(model)
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node
           for a in n.attribute):
        raise ValueError('graphs with sub-graphs (If/Loop/Scan) are not converted to fp16')
    _lift_constants(model.graph)
    converter = _Converter(model, keep, emulate)
    converted = converter.run()
    onnx.checker.check_model(converted, full_check=True)
    onnx.shape_inference.infer_shapes(converted, strict_mode=True)
    return converted, converter.kept


def keep_from_card(card: ModelCard) -> Fp32Keep:
    """Return what the exporter kept in fp32 for this model, as its card records it (no torch needed here)."""
    entry = card.provenance['fp16']
    return Fp32Keep(tuple(entry['fp32_ops']), tuple(entry['fp32_node_prefixes']))


def derive_fp16(model_path: Path, card: ModelCard, folder: Path) -> Path:
    """
    Write the card's fp16 graph into folder (once; reused while its sha256 matches) and return its path.

    Raises ValueError if the result is not the graph the card pins (another onnx version may
    serialise differently), naming the onnx version that reproduces it.
    """
    entry = card.provenance['fp16']
    path = Path(folder) / entry['onnx']
    if path.is_file() and sha256_of(path) == entry['sha256']:
        return path
    converted, _ = convert(onnx.load(str(model_path)), keep_from_card(card))
    data = converted.SerializeToString()
    if hashlib.sha256(data).hexdigest() != entry['sha256']:
        exported_with = entry.get('onnx_version') or card.provenance.get('export', {}).get('onnx')
        raise ValueError(f'the fp16 graph derived from {Path(model_path).name} with onnx {onnx.__version__} is not '
                         f'the one its card pins (validated with onnx {exported_with}): install that onnx version, '
                         f'or re-validate it here with python -m training.deploy.fp16 {Path(model_path).name}')
    write_atomic(path, data)
    return path
