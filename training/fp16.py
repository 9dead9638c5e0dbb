"""
fp16 graphs for TensorRT's strongly typed builds: ``<model>_fp16.onnx`` beside each exported graph.

    python -m training.fp16 models/seafusion.onnx [models/seafusion_float.onnx ...] [--samples tests/data/pairs]

training.export calls ``attach_fp16`` for every graph it writes; this command does the same for
graphs exported earlier. The conversion:

* graph inputs and outputs keep their types (uint8 I/O unchanged; a float graph keeps float
  I/O, cast at the edges); float weights and Constant values become fp16 (clamped to its
  range), Cast(to=FLOAT) becomes Cast(to=FLOAT16), so every float op computes in half precision;
* ops a network keeps in fp32 stay fp32, with Casts at their borders: the op types its module
  declares in ``FP32_OPS`` and node-name prefixes in ``FP32_NODES`` (CoCoNet's attention,
  ReFusion's norms: methods.md; fp16 overflows there), and inputs ONNX requires to be float
  (Resize's roi and scales);
* the result passes onnx.checker with strict type inference, and is validated against the
  fp32 graph on real pairs with ONNX Runtime, fp16 storage emulated (every tensor the fp16
  graph holds in half precision rounded to it; ONNX Runtime on a CPU would silently run fp16
  ops without CPU kernels in fp32 and hide an overflow): max and mean grey-level difference of the fused image,
  share of pixels off by more than one level, metric change, mask agreement. Those numbers
  and the file's sha256 go into the model card (``provenance.fp16``), which is where the
  TensorRT builder finds and verifies the graph. A graph off by more than FP16_MAX_LEVELS
  (max) or FP16_MEAN_LEVELS (mean) is an error: something overflows that is not kept in fp32.

Not onnxconverter-common (1.16.0): its convert_float_to_float16 leaves Cast(to=FLOAT) nodes as
they are, and these graphs begin by casting their uint8 inputs to float, so the result feeds
fp16 ops with float tensors and ONNX Runtime refuses to load it.
"""

import argparse
import copy
from dataclasses import dataclass, replace
from pathlib import Path
import sys
import tempfile
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper
import onnxruntime as ort

from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fusion_ros.core.model_card import card_path_for, load_card, ModelCard, save_card, sha256_of
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.evaluation import metrics

FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
FP16_MAX, FP16_TINY = 65504.0, 2.0 ** -24          # largest finite and smallest subnormal half
FLOAT_ONLY_INPUTS = {'Resize': (1, 2), 'Upsample': (1,)}   # roi / scales: ONNX types them float
FP16_MAX_LEVELS, FP16_MEAN_LEVELS = 32, 0.5
METRICS = ('EN', 'SF', 'MI', 'VIF', 'Qabf', 'SSIM')


@dataclass(frozen=True)
class Fp32Keep:
    """Which nodes an fp16 graph computes in fp32: by op type, or by name prefix (the torch module path)."""

    op_types: tuple[str, ...] = ()
    node_prefixes: tuple[str, ...] = ()

    def keeps(self, node: onnx.NodeProto) -> bool:
        """Tell whether a node must stay fp32."""
        return node.op_type in self.op_types or node.name.startswith(self.node_prefixes or ('\0',))


def keep_for(method: str) -> Fp32Keep:
    """Read what a method's network module declares (FP32_OPS, FP32_NODES); nothing for unknown methods."""
    from fusion_ros.networks.registry import declared     # torch: only the exporter needs it, not a GPU check
    return Fp32Keep(tuple(declared(method, 'FP32_OPS', ())), tuple(declared(method, 'FP32_NODES', ())))


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


def compare_pipelines(reference: FusionPipeline, candidate: FusionPipeline, samples) -> dict:
    """
    Measure how far the candidate's fused images (and masks) are from the reference's, and the metric change.

    Used for fp16 vs fp32 here and for TensorRT vs ONNX Runtime by benchmarks/first_run.py.
    """
    diffs, scores, masks = [], {m: ([], []) for m in METRICS}, []
    kind = (reference.card.mask or {}).get('kind')
    for _, ir, vis in samples:
        want, got = reference.fuse(ir, vis), candidate.fuse(ir, vis)
        diffs.append(np.abs(want.fused_bgr.astype(np.int16) - got.fused_bgr.astype(np.int16)).ravel())
        gray_ir, gray_vis = (metrics.as_gray(image) for image in reference.prepare(ir, vis))   # registered
        for result, column in ((want, 0), (got, 1)):
            values = metrics.compute_all(metrics.as_gray(result.fused_bgr), gray_ir, gray_vis)
            for m in METRICS:
                scores[m][column].append(values[m])
        if kind:
            masks.append(float(np.mean(want.mask == got.mask)) if kind == 'classes'
                         else float(np.abs(want.mask.astype(np.int16) - got.mask.astype(np.int16)).max()))
    flat = np.concatenate(diffs)
    report = {'samples': [s[0] for s in samples],
              'max_abs_levels': int(flat.max()), 'mean_abs_levels': round(float(flat.mean()), 4),
              'share_off_by_more_than_1': round(float(np.mean(flat > 1)), 6),
              'metrics_reference': {m: round(float(np.mean(v[0])), 4) for m, v in scores.items()},
              'metric_change': {m: round(float(np.mean(v[1]) - np.mean(v[0])), 5) for m, v in scores.items()}}
    if kind == 'classes':
        report['class_map_equal_share'] = round(min(masks), 5)
    elif kind:
        report['saliency_max_abs_levels'] = int(max(masks))
    return report


def validate(fp32_path: Path, fp16_path: Path, card: ModelCard, samples, keep: Fp32Keep, threads: int = 0) -> dict:
    """
    fp16 vs fp32 on real pairs through the node's pipeline on ONNX Runtime.

    The numbers come from the emulation (every fp16 tensor rounded to half precision, each op in
    fp32 as tensor-core kernels accumulate), which shows an overflow wherever the fp16 graph has
    one; the fp16 file itself is loaded and run once, on a crop of the first pair.
    """
    emulated, _ = convert(onnx.load(str(fp32_path)), keep, emulate=True)
    with tempfile.TemporaryDirectory() as folder:
        emulated_path = Path(folder) / 'emulated_fp16.onnx'
        onnx.save(emulated, str(emulated_path))
        fp32, fp16 = (FusionPipeline(card, OnnxRuntimeBackend(path, card, threads))
                      for path in (fp32_path, emulated_path))
        report = compare_pipelines(fp32, fp16, samples)
    _, ir, vis = samples[0]
    FusionPipeline(card, OnnxRuntimeBackend(fp16_path, card, threads)).fuse(ir[:64, :64], vis[:64, :64])
    return {'reference': Path(fp32_path).name, 'compared': Path(fp16_path).name,
            'runtime': f'onnxruntime {ort.__version__} CPU, fp16 storage emulated (tensors rounded to half '
                       'precision, ops in fp32)', **report}


def fp16_path_for(model_path: Path) -> Path:
    """<model stem>_fp16.onnx beside the model."""
    return Path(model_path).with_name(f'{Path(model_path).stem}_fp16.onnx')


def attach_fp16(model_path: Path, samples, threads: int = 0) -> dict:
    """Write, check and validate the fp16 twin of an exported graph and record it in the card; returns the entry."""
    model_path = Path(model_path)
    card = load_card(model_path)
    keep = keep_for(card.method)
    converted, kept = convert(onnx.load(str(model_path)), keep)
    out = fp16_path_for(model_path)
    onnx.save(converted, str(out))
    report = validate(model_path, out, card, samples, keep, threads)
    if report['max_abs_levels'] > FP16_MAX_LEVELS or report['mean_abs_levels'] > FP16_MEAN_LEVELS:
        out.unlink()
        raise RuntimeError(f'the fp16 graph of {model_path.name} differs from fp32 by up to {report["max_abs_levels"]} '
                           f'grey levels (mean {report["mean_abs_levels"]}): something overflows in half precision; '
                           f'declare those ops in FP32_OPS of the network module')
    entry = {'onnx': out.name, 'sha256': sha256_of(out), 'converter': 'training.fp16',
             'fp32_ops': list(keep.op_types), 'fp32_node_prefixes': list(keep.node_prefixes), 'nodes_kept_fp32': kept,
             'validation': report}
    save_card(replace(card, provenance={**card.provenance, 'fp16': entry}), card_path_for(model_path))
    return entry


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point: fp16 graphs for graphs exported before training.export wrote them."""
    from training.export import load_samples
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='+', type=Path)
    parser.add_argument('--samples', type=Path, default=Path(__file__).resolve().parent.parent / 'tests' / 'data'
                        / 'pairs')
    parser.add_argument('--limit', type=int, default=100, help='at most this many sample pairs')
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args(argv)
    samples = load_samples(args.samples, args.limit)
    for path in args.models:
        entry = attach_fp16(path, samples, args.threads)
        v = entry['validation']
        print(f"{entry['onnx']}: max {v['max_abs_levels']} / mean {v['mean_abs_levels']} grey levels vs fp32, "
              f"{entry['nodes_kept_fp32']} nodes kept fp32, metric change {v['metric_change']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
