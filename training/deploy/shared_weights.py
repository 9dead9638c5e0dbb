"""
Each set of weights ships once: the float twin reads its weights out of the uint8 graph's file.

The uint8 graph (``<model>.onnx``) stays self-contained: ONNX Runtime, TensorRT and the engine cache
read it as before. Its float twin (``<model>_float.onnx``) holds the same network, and every weight
tensor it has is byte-for-byte in the uint8 file, so the twin keeps only its operators and points
each large initializer at those bytes (ONNX external data: location, offset, length). The twin
records the uint8 file's sha256 in its metadata, so new weights always give a new twin file (and
new TensorRT cache keys); its card pins the uint8 file too (``ModelCard.external_data``).

Measured on the shipped CoCoNet: the float twin goes from 36.6 MB to 0.1 MB (see README, "Where
things are").
"""

from pathlib import Path

import onnx
from onnx import numpy_helper

from fusion_ros.core.model_card import sha256_of

MIN_SHARED_BYTES = 1024     # smaller tensors (shapes, scalars) stay inline: nothing to gain, easier to read
SOURCE_SHA_KEY = 'fusion_ros.weights_sha256'


def share_weights(graph_path: Path, source_path: Path, min_bytes: int = MIN_SHARED_BYTES) -> dict[str, str]:
    """
    Rewrite graph_path so its initializers found in source_path are read from there; returns {source name: sha256}.

    Raises ValueError if the two files are not side by side or a large initializer is not in the
    source (then the graphs do not hold the same network, and sharing would change the model).
    """
    graph_path, source_path = Path(graph_path), Path(source_path)
    if graph_path.parent.resolve() != source_path.parent.resolve():
        raise ValueError(f'{graph_path} and {source_path} must be in one folder to share weights')
    blob = source_path.read_bytes()
    model = onnx.load(str(graph_path))
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        raw = array.astype(array.dtype.newbyteorder('<'), copy=False).tobytes()   # external data is little-endian
        if len(raw) < min_bytes:
            continue
        offset = blob.find(raw)
        if offset < 0:
            raise ValueError(f'initializer {tensor.name} of {graph_path.name} is not in {source_path.name}: '
                             'the two graphs do not hold the same weights')
        for name in ('raw_data', 'float_data', 'int32_data', 'int64_data', 'double_data', 'external_data'):
            tensor.ClearField(name)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (('location', source_path.name), ('offset', str(offset)), ('length', str(len(raw)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    digest = sha256_of(source_path)
    kept = [p for p in model.metadata_props if p.key != SOURCE_SHA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=SOURCE_SHA_KEY, value=digest)
    onnx.save(model, str(graph_path))
    onnx.checker.check_model(str(graph_path))
    return {source_path.name: digest}
