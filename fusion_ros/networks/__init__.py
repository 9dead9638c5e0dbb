"""
The torch.nn networks of every shipped method, in the runtime package so an installed torch backend can load them.

Nothing on the ONNX Runtime or TensorRT path imports this package (it needs torch);
training/ imports it, never the other way round.
"""
