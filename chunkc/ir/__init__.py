"""chunkc's intermediate representation."""

from . import ops as _ops  # noqa: F401  (registers every op record; the registry imports no op family)
from .dims import AxisFlow, AxisSource, MIX, NEW
from .dtypes import DType, dtype
from .graph import Graph, Node, Value, sanitize_name
from .registry import OpDef, REQUIRED, all_ops, has_op, lookup, register
from .sizes import Size, evaluate, format_size, parse_size, sym
from .types import TensorType

__all__ = [
    "AxisFlow", "AxisSource", "MIX", "NEW", "DType", "dtype", "Graph", "Node", "Value", "sanitize_name",
    "OpDef", "REQUIRED", "all_ops", "has_op", "lookup", "register", "Size", "evaluate", "format_size",
    "parse_size", "sym", "TensorType",
]
