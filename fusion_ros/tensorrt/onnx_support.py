"""
Can TensorRT's ONNX parser take this graph? Checks that run without TensorRT.

The operator list is the "supported" list of onnx/onnx-tensorrt `docs/operators.md`
for TensorRT 10.15 (opset 9 to 24), cross-checked against the 10.1-GA tag (opset
9 to 20), as restated in the project's docs/tensorrt.md (section 4). UINT8 rules come
from the same brief (section 3): UINT8 is allowed for network I/O only, so a uint8
input may feed nothing but a Cast, and a uint8 output must be produced by a Cast
whose input is FLOAT or HALF (the only sources TensorRT documents for a cast to UINT8;
an ArgMax's INT64 class ids must go through float first).
"""

from pathlib import Path

import onnx

SOURCE = 'onnx/onnx-tensorrt docs/operators.md, TensorRT 10.15 (opset 9-24); checked against tag 10.1-GA'

SUPPORTED_OPS = frozenset('''
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization BlackmanWindow
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool
Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow
PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze
Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
'''.split())


def graph_ops(model: onnx.ModelProto) -> set[str]:
    """Operator types of the main graph and of every sub-graph (If/Loop/Scan bodies)."""
    ops: set[str] = set()
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            ops.add(node.op_type)
            stack.extend(attr.g for attr in node.attribute if attr.type == onnx.AttributeProto.GRAPH)
            stack.extend(attr.graphs for attr in node.attribute if attr.type == onnx.AttributeProto.GRAPHS)
    return ops


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """Operators of the graph that TensorRT's ONNX parser does not list as supported."""
    return sorted(graph_ops(model) - SUPPORTED_OPS)


def uint8_io_violations(model: onnx.ModelProto) -> list[str]:
    """Places where a uint8 input feeds something other than a Cast, or a uint8 output is not made by one."""
    uint8 = onnx.TensorProto.UINT8
    problems = []
    inputs = {v.name for v in model.graph.input if v.type.tensor_type.elem_type == uint8}
    outputs = {v.name for v in model.graph.output if v.type.tensor_type.elem_type == uint8}
    for node in model.graph.node:
        for name in set(node.input) & inputs:
            if node.op_type != 'Cast':
                problems.append(f'uint8 input {name!r} feeds {node.op_type} node {node.name!r}, not a Cast')
        for name in set(node.output) & outputs:
            if node.op_type != 'Cast':
                problems.append(f'uint8 output {name!r} is produced by {node.op_type} node {node.name!r}, not a Cast')
    return problems


def uint8_cast_source_violations(model: onnx.ModelProto) -> list[str]:
    """Casts to UINT8 whose input is not FLOAT or HALF (types from ONNX shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)}
    types.update({init.name: init.data_type for init in inferred.graph.initializer})
    allowed = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    problems = []
    for node in model.graph.node:
        to = next((a.i for a in node.attribute if a.name == 'to'), None)
        if node.op_type == 'Cast' and to == onnx.TensorProto.UINT8 and types.get(node.input[0]) not in allowed:
            source = onnx.TensorProto.DataType.Name(types.get(node.input[0], 0))
            problems.append(f'Cast node {node.name!r} makes UINT8 from {source}; TensorRT casts to UINT8 only '
                            'from FLOAT or HALF (cast through float first)')
    return problems


def check_for_tensorrt(path: Path) -> list[str]:
    """All reasons TensorRT would reject the ONNX file at path (empty when it should parse)."""
    model = onnx.load(str(path))
    problems = [f'operator {op} is not supported by the TensorRT ONNX parser ({SOURCE})'
                for op in unsupported_ops(model)]
    return problems + uint8_io_violations(model) + uint8_cast_source_violations(model)
