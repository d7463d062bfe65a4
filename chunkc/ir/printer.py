"""The text form of a graph (grammar: docs/ir.md).

::

    graph @block(%x: f32[B, L, 768]) {
      const %w: f32[3072, 768]
      const %scale: f32[] = 0.125
      %linear: f32[B, L, 3072] = linear(%x, %w)
      %gelu: f32[B, L, 3072] = gelu(%linear) {approximate = "none"}
      %split_0: f32[B, L, 1536], %split_1: f32[B, L, 1536] = split(%gelu) {sizes = (1536, 1536), axis = 2} @split
      return %gelu, %split_1
    }

One statement per line, constants first, then the nodes in schedule order.  A
node whose name differs from its first output's name ends with ``@node_name``.
A node with a known source (``node.source``) ends with a ``#@`` comment giving
its module, class, file and line (grammar: :mod:`chunkc.ir.source`).
Every attribute of a node is printed, defaults included, so the text does not
depend on the defaults of the chunkc version that reads it.  Constants of at
most :data:`INLINE_LIMIT` elements print their data, bit-exactly; larger ones
print only their type (their data travels beside the text, see
:mod:`chunkc.ir.serialize`).  :func:`chunkc.ir.parser.parse_graph` reads the
text back, and ``print -> parse -> print`` is the identity.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from ..errors import IRError
from .dtypes import DType
from .source import format_source
from .types import TensorType

if TYPE_CHECKING:  # the graph module imports this one for str(graph)
    from .graph import Graph, Node, Value

INLINE_LIMIT = 16  # constants with at most this many elements print their data
WRAP_WIDTH = 100  # a header longer than this prints one graph input per line

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def print_graph(graph: Graph) -> str:
    """The text form of ``graph``; :func:`chunkc.ir.parser.parse_graph` reads it back."""
    lines = [_header(graph)]
    lines += ["  " + _constant(c) for c in graph.constants]
    lines += ["  " + _node(n) for n in graph.nodes]
    lines.append("  return" + ("" if not graph.outputs else " " + ", ".join(_ref(v) for v in graph.outputs)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_type(t: TensorType) -> str:
    """``f32[B, L, 768]``; a 0-d tensor is ``f32[]``."""
    return str(t)


def format_attr(value: Any) -> str:
    """One attribute value in the text syntax (see docs/ir.md)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest exact text; 'inf', '-inf', 'nan' included
    if isinstance(value, str):
        return json.dumps(value)  # ASCII-only, escaped
    if isinstance(value, DType):
        return value.short
    if isinstance(value, sympy.Basic):
        if value.is_Integer:
            return str(int(value))
        from .sizes import format_size
        return f"size({format_size(value)})"
    if isinstance(value, tuple):
        if len(value) == 1:
            return f"({format_attr(value[0])},)"
        return "(" + ", ".join(format_attr(v) for v in value) + ")"
    raise IRError(f"attribute value {value!r} of type {type(value).__name__} has no text form")


def format_float(x: float, dtype: DType) -> str:
    """Shortest text that reads back (through a Python float) to the same bits."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if dtype in (DType.float32, DType.float16):
        np_type = dtype.numpy.type
        short = str(np_type(x))  # NumPy's shortest round-trip text for that precision
        if np_type(float(short)).tobytes() == np_type(x).tobytes() and _looks_float(short):
            return short
    return repr(x)


def _looks_float(text: str) -> bool:
    return any(c in text for c in ".eE") or text in ("inf", "-inf", "nan")


# -- pieces -------------------------------------------------------------------


def _name(name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise IRError(f"{what} name {name!r} is not an identifier and cannot be printed; "
                      "build names through Graph (chunkc.ir.graph.sanitize_name)")
    return name


def _ref(v: Value) -> str:
    return "%" + _name(v.name, "value")


def _header(graph: Graph) -> str:
    params = [f"{_ref(v)}: {format_type(v.type)}" for v in graph.inputs]
    head = f"graph @{_name(graph.name, 'graph')}("
    one_line = head + ", ".join(params) + ") {"
    if len(one_line) <= WRAP_WIDTH or len(params) < 2:
        return one_line
    return head + "\n" + ",\n".join("    " + p for p in params) + "\n) {"


def _constant(c: Value) -> str:
    text = f"const {_ref(c)}: {format_type(c.type)}"
    if c.data is not None and c.data.size <= INLINE_LIMIT:
        text += " = " + format_data(c.data, c.type.dtype)
    return text


def format_data(data: np.ndarray, dtype: DType) -> str:
    """Nested lists of exact scalars (a bare scalar for a 0-d array)."""
    if data.ndim == 0:
        return _scalar(data.item(), dtype)
    return "[" + ", ".join(format_data(data[i], dtype) for i in range(data.shape[0])) + "]"


def _scalar(x, dtype: DType) -> str:
    if dtype == DType.bool:
        return "true" if x else "false"
    if dtype.is_floating:
        return format_float(x, dtype)
    return str(int(x))


def _node(n: Node) -> str:
    if not n.outputs:
        raise IRError(f"node {n.name} ({n.op.name}) has no outputs; the text form needs at least one")
    results = ", ".join(f"{_ref(o)}: {format_type(o.type)}" for o in n.outputs)
    text = f"{results} = {n.op.name}({', '.join(_ref(v) for v in n.inputs)})"
    if n.attrs:
        text += " {" + ", ".join(f"{_name(k, 'attribute')} = {format_attr(v)}" for k, v in n.attrs.items()) + "}"
    if n.name != n.outputs[0].name:
        text += " @" + _name(n.name, "node")
    where = format_source(n.source) if n.source is not None else ""
    if where:
        text += "  #@ " + where
    return text


__all__ = ["print_graph", "format_type", "format_attr", "format_float", "format_data", "INLINE_LIMIT"]
