"""Importers from PyTorch and ONNX into chunkc IR. Only these import torch or onnx."""
