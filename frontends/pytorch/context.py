"""What a converter sees: the bound arguments of one FX node and a builder.

A converter is a small function ``fn(cx: Ctx, a: Args)`` registered for one
or more ATen overload packets (see :mod:`.converters`).  ``a`` holds the
node's arguments bound to the op's schema by name (``a.self``, ``a.dim``,
``a.keepdim``), already translated: tensors are chunkc ``Value``\\ s, symbolic
ints are chunkc sizes (``L``, ``4*L``), dtypes are still ``torch.dtype``
(``cx.dtype`` converts them).  The converter returns a ``Value``, a tuple of
them (``None`` for an output chunkc does not produce), or raises
:class:`NotConvertible` to say why this particular call cannot be mapped.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sympy
import torch
import torch.fx as fx

from chunkc.ir.dtypes import DType
from chunkc.ir.graph import Graph, Value
from chunkc.ir.sizes import Size
from chunkc.ir.types import TensorType

from .dtypes import to_chunkc
from .symbols import SymbolicFloat


class NotConvertible(Exception):
    """This call cannot be mapped to chunkc ops; the message says why."""


class Args:
    """Schema-bound arguments: ``a.self``, ``a.dim``; ``a.get(name, default)``."""

    __slots__ = ("_values", "_op")

    def __init__(self, values: dict[str, Any], op: str):
        self._values = values
        self._op = op

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise NotConvertible(f"{self._op} has no argument {name!r} "
                                 f"(its arguments: {', '.join(self._values)})") from None

    def get(self, name: str, default: Any = None) -> Any:
        v = self._values.get(name, default)
        return default if v is None else v

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def items(self):
        return self._values.items()


def bind_schema(op: torch._ops.OpOverload, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind positional and keyword arguments to the schema's names, defaults filled."""
    out: dict[str, Any] = {}
    positional = list(args)
    for i, arg in enumerate(op._schema.arguments):
        if i < len(positional) and not arg.kwarg_only:
            out[arg.name] = positional[i]
        elif arg.name in kwargs:
            out[arg.name] = kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
        else:
            out[arg.name] = None
    return out


class Ctx:
    """Builds the chunkc nodes for one FX node."""

    def __init__(self, graph: Graph, node: fx.Node, fx_args: dict[str, Any], out_types: list[TensorType | None],
                 used_outputs: set[int]):
        self.graph = graph
        self.node = node
        self.fx_args = fx_args  # the schema-bound arguments before translation (FX nodes, numbers)
        self.out_types = out_types
        self._used = used_outputs

    # -- the node being converted -------------------------------------------------
    @property
    def name(self) -> str:
        return self.node.name

    @property
    def out(self) -> TensorType:
        """The type torch computed for output 0 (symbols already chunkc's)."""
        t = self.out_types[0] if self.out_types else None
        if t is None:
            raise NotConvertible("the op's result is not a tensor")
        return t

    def out_dtype(self, i: int = 0) -> DType:
        t = self.out_types[i]
        if t is None:
            raise NotConvertible(f"output {i} is not a tensor")
        return t.dtype

    def output_used(self, i: int) -> bool:
        """Whether output ``i`` of a multi-output op is read by any node."""
        return i in self._used

    # -- building -----------------------------------------------------------------
    def op(self, opname: str, *inputs: Value, **attrs) -> Value | tuple[Value, ...]:
        node = self.graph.add_node(opname, inputs, attrs, name=self.node.name)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def op_multi(self, opname: str, *inputs: Value, **attrs) -> tuple[Value, ...]:
        """Like :meth:`op`, always returning the tuple of outputs (split with one piece)."""
        return self.graph.add_node(opname, inputs, attrs, name=self.node.name).outputs

    def const(self, value: Any, dtype: DType) -> Value:
        """A constant (0-d for a number) of ``dtype``."""
        arr = np.asarray(value, dtype=dtype.numpy)
        return self.graph.add_constant(f"{self.node.name}_const", arr)

    def tensor(self, x: Any, dtype: DType | None = None) -> Value:
        """``x`` as a Value: Values are cast to ``dtype`` when given, numbers become 0-d constants."""
        if isinstance(x, Value):
            return self.cast(x, dtype) if dtype is not None else x
        if isinstance(x, bool) or isinstance(x, (int, float, np.number)):
            if dtype is None:
                dtype = DType.bool if isinstance(x, bool) else DType.int64 if isinstance(x, int) else DType.float32
            return self.const(x, dtype)
        if isinstance(x, torch.Tensor):
            return self.const(x.detach().cpu().numpy(), dtype or to_chunkc(x.dtype))
        if isinstance(x, SymbolicFloat):
            return self.symbolic_float(x.expr, dtype or DType.float32)
        if x is not None and hasattr(x, "free_symbols"):
            return self.size_tensor(x, dtype or DType.int64)
        raise NotConvertible(f"argument {x!r} ({type(x).__name__}) is not a tensor or a number")

    def size_tensor(self, size: Size, dtype: DType) -> Value:
        """A 0-d tensor holding a symbolic size, evaluated at run time."""
        v = self.graph.add_node("size_tensor", (), {"values": (size,), "shape": (), "dtype": DType.int64},
                                name=f"{self.node.name}_size").outputs[0]
        return self.cast(v, dtype)

    def symbolic_float(self, expr, dtype: DType) -> Value:
        """A 0-d float tensor computing ``expr`` (a float expression of sizes) at run time:
        integer-valued parts become ``size_tensor`` nodes, the rest float arithmetic."""
        if not dtype.is_floating:
            dtype = DType.float32
        if expr.is_Number:
            return self.const(float(expr), dtype)
        if expr.is_integer:
            return self.size_tensor(expr, dtype)
        def node(op: str, *xs: Value) -> Value:
            return self.graph.add_node(op, xs, {}, name=f"{self.node.name}_sym").outputs[0]

        if isinstance(expr, sympy.Pow):
            base = self.symbolic_float(expr.base, dtype)
            if expr.exp == -1:
                return node("reciprocal", base)
            if expr.exp == sympy.Rational(1, 2):
                return node("sqrt", base)
            return node("pow", base, self.symbolic_float(expr.exp, dtype))
        args = [self.symbolic_float(a, dtype) for a in expr.args]
        if isinstance(expr, (sympy.Add, sympy.Mul)):
            out = args[0]
            for v in args[1:]:
                out = node("add" if isinstance(expr, sympy.Add) else "mul", out, v)
            return out
        for cls, op in ((sympy.floor, "floor"), (sympy.ceiling, "ceil")):
            if isinstance(expr, cls):
                return node(op, args[0])
        raise NotConvertible(f"the float {expr} of symbolic sizes uses {type(expr).__name__}")

    def cast(self, v: Value, dtype: DType | None) -> Value:
        if dtype is None or v.dtype == dtype:
            return v
        return self.graph.add_node("cast", (v,), {"dtype": dtype}, name=f"{self.node.name}_cast").outputs[0]

    def dtype(self, dt: torch.dtype | None, default: DType | None = None) -> DType | None:
        return default if dt is None else to_chunkc(dt, self.node.name)

    def result_type(self, *names: str) -> DType:
        """torch's result type of the named arguments (tensors and Python numbers),
        computed by torch itself on the fake tensors of the export."""
        vals = [_fake_or_number(self.fx_args.get(n)) for n in names]
        vals = [v for v in vals if v is not None]
        if not vals:
            return self.out_dtype()
        if len(vals) == 1:
            v = vals[0]
            return to_chunkc(v.dtype if isinstance(v, torch.Tensor) else torch.tensor(v).dtype, self.node.name)
        dt = torch.result_type(vals[0], vals[1])
        for v in vals[2:]:
            dt = torch.result_type(torch.empty((1,), dtype=dt, device="meta"), v)
        return to_chunkc(dt, self.node.name)

    def fail(self, reason: str) -> NotConvertible:
        return NotConvertible(reason)


def _fake_or_number(x: Any) -> Any:
    if isinstance(x, fx.Node):
        v = x.meta.get("val")
        if isinstance(v, torch.Tensor):
            return v
        if isinstance(v, (torch.SymInt, int)) and not isinstance(v, bool):
            return 1
        if isinstance(v, (torch.SymFloat, float)):
            return 1.0
        if isinstance(v, (torch.SymBool, bool)):
            return True
        return None
    if isinstance(x, (bool, int, float)):
        return x
    return None
