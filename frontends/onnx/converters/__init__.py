"""ONNX op converters, one module per op family (see registry.py).

Importing this package registers every family's converters in the table.
"""

from .registry import CONVERTERS, Converter, converter, lookup, supported_op_types
from . import constant, elementwise, linalg, nn, quantize, recurrent, reduce, resize, shape, signal, tensor  # noqa: E402,F401

__all__ = ["CONVERTERS", "Converter", "converter", "lookup", "supported_op_types"]
