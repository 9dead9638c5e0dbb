"""
Bring an already exported graph up to TensorRT's Cast rule without its checkpoint.

    python -m training.deploy.retrofit models/seafusion_seg.onnx models/seafusion_seg_float.onnx ...

Graphs exported before fusion_ros.networks.graphs.class_ids_to_uint8 cast their ArgMax class
ids (INT64) straight to UINT8, which TensorRT documents only from FLOAT or HALF. This inserts a
Cast to FLOAT in front of each such Cast, checks the graph, checks that ONNX Runtime gives
bit-identical outputs before and after on the bundled pairs (ids < 256 are exact in float),
and updates the card's sha256 with a note of what was done. The shipped models have no
checkpoint in the repository, so a re-export is not possible; this is the same graph change.
"""

import argparse
from dataclasses import replace
from pathlib import Path
import sys
from typing import Optional

import numpy as np
import onnx
from onnx import helper

from fusion_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fusion_ros.core.model_card import card_path_for, load_card, save_card, sha256_of
from fusion_ros.core.pipeline import FusionPipeline
from fusion_ros.tensorrt.onnx_support import uint8_cast_source_violations
from training.deploy.samples import load_samples

PAIRS = Path(__file__).resolve().parent.parent / 'tests' / 'data' / 'pairs'


def cast_through_float(model: onnx.ModelProto) -> int:
    """Insert Cast(to=FLOAT) before every Cast to UINT8 fed by a non-float tensor; returns how many."""
    offending = {p.split("'")[1] for p in uint8_cast_source_violations(model)}
    nodes = []
    for node in model.graph.node:
        if node.name in offending:
            as_float = f'{node.input[0]}_as_float'
            nodes.append(helper.make_node('Cast', [node.input[0]], [as_float], name=f'{node.name}_via_float',
                                          to=onnx.TensorProto.FLOAT))
            node.input[0] = as_float
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return len(offending)


def outputs_on_samples(path: Path, samples) -> list[np.ndarray]:
    """Every output of the graph on every sample, through the same pipeline the node runs."""
    card = load_card(path, verify=False)
    backend = OnnxRuntimeBackend(path, card, threads=1)
    if card.graph == 'segment':     # the segmenter alone: luma in, classes out
        return [backend.run({'luma': np.ascontiguousarray(vis[..., 1])})['classes'] for _, _, vis in samples]
    pipeline = FusionPipeline(card, backend)
    results = [pipeline.fuse(ir, vis) for _, ir, vis in samples]
    return [a for r in results for a in (r.fused_bgr, r.mask) if a is not None]


def retrofit(path: Path, samples) -> Optional[str]:
    """Fix one graph in place (and its card); returns what was done, or None when it already complies."""
    model = onnx.load(str(path))
    count = cast_through_float(model)
    if not count:
        return None
    before = outputs_on_samples(path, samples)
    original = path.read_bytes()
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    card = load_card(path, verify=False)
    note = (f'{count} Cast INT64->UINT8 routed through FLOAT by `python -m training.deploy.retrofit` '
            f'(TensorRT Cast rule); outputs bit-identical on {len(samples)} bundled pairs')
    after = outputs_on_samples(path, samples)
    if len(before) != len(after) or any(not np.array_equal(a, b) for a, b in zip(before, after)):
        path.write_bytes(original)
        raise RuntimeError(f'{path}: outputs changed after the Cast fix; the file was left as it was')
    save_card(replace(card, sha256=sha256_of(path), provenance={**card.provenance, 'retrofit': note}),
              card_path_for(path))
    return note


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='+', type=Path)
    parser.add_argument('--samples', type=Path, default=PAIRS)
    args = parser.parse_args(argv)
    samples = load_samples(args.samples, limit=100)
    for path in args.models:
        print(f'{path}: {retrofit(path, samples) or "already complies"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
