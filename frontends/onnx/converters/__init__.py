"""ONNX op converters, one module per op family (see registry.py)."""

from .registry import CONVERTERS, Converter, converter, lookup, supported_op_types

__all__ = ["CONVERTERS", "Converter", "converter", "lookup", "supported_op_types"]
