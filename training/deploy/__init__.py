"""From trained weights to shipped files: ONNX export and its checks, fp16, int8, released checkpoints, engines."""
