"""TensorRT support: checks that need no TensorRT install, and (later) the engine builder and backend."""
