"""Deployment: ONNX export, exact graph passes, the float32 island, INT8 and float16 graphs."""
