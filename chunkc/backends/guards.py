"""Input checks of generated programs, in the manner of torch.export's guards.

Every generated program starts its call with ``check_inputs(inputs, ...)``, a
module-level function written by :func:`guard_function`: the count of inputs,
each one's array type, dtype, device (PyTorch), rank and static sizes, that
every size symbol is at least 1, and the relations between sizes (an axis that
must be ``2*L + 1`` once ``x`` has given ``L``).  It is straight-line Python over
the inputs' shapes — a few comparisons per input — and only when one fails does
:func:`explain` work out which input is at fault and what was expected, raising
an :class:`~chunkc.errors.InputError` such as::

    graph bert, input mask: axis 1 must be L = 24 (L from input ids, axis 1), got 23

The generated module holds its graph's :class:`Signature` (``SIGNATURE``), built
from plain literals: names are the program's own identifiers, sizes chunkc's size
text, parsed without evaluating code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import InputError
from ..ir.dtypes import DType, dtype as to_dtype
from ..ir.lowering import tuple_literal
from ..ir.sizes import Size, evaluate, format_size, parse_size


@dataclass(frozen=True)
class InputSpec:
    name: str  # the parameter's identifier in the generated code
    dtype: DType
    shape: tuple[Size, ...]

    @property
    def type_text(self) -> str:
        return f"{self.dtype.short}[{', '.join(format_size(s) for s in self.shape)}]"


@dataclass(frozen=True)
class Signature:
    """What a generated program takes: its graph's name, its inputs, and the kind of arrays
    (``"torch"``: tensors on the module's device; ``"array"``: arrays of the program's ``xp``)."""

    graph: str
    inputs: tuple[InputSpec, ...]
    kind: str = "array"

    @classmethod
    def of(cls, graph: str, inputs: Sequence[tuple[str, str, Sequence[str]]], kind: str = "array") -> "Signature":
        """Rebuild a signature from literals (what generated code calls)."""
        return cls(graph, tuple(InputSpec(name, to_dtype(dt), tuple(_size(s) for s in shape))
                                for name, dt, shape in inputs), kind)

    def literal(self) -> str:
        """Python source that rebuilds this signature with :meth:`of`."""
        items = [tuple_literal([repr(spec.name), repr(spec.dtype.short), tuple_literal([repr(format_size(s))
                                                                                        for s in spec.shape])])
                 for spec in self.inputs]
        return f"guards.Signature.of({self.graph!r}, {tuple_literal(items)}, kind={self.kind!r})"

    def text(self) -> str:
        return ", ".join(f"{spec.name}: {spec.type_text}" for spec in self.inputs)

    def symbols(self) -> list[str]:
        seen: dict[str, None] = {}
        for spec in self.inputs:
            for s in spec.shape:
                if not isinstance(s, int):
                    for x in sorted(s.free_symbols, key=lambda x: x.name):
                        seen.setdefault(x.name, None)
        return list(seen)


def _size(text: str) -> Size:
    return int(text) if text.lstrip("-").isdigit() else parse_size(text)


# -- the slow path: which input, and what was expected ----------------------------------------


def explain(signature: Signature, inputs: Sequence[Any], context: Any = None) -> InputError:
    """The error for inputs that failed ``check_inputs``: the first input at fault and why.
    ``context`` is the module's device (torch) or the program's array module (arrays)."""
    where = f"graph {signature.graph}"
    n = len(signature.inputs)
    if len(inputs) != n:
        return InputError(f"{where} takes {n} input{'s' if n != 1 else ''} ({signature.text() or 'none'}), "
                          f"got {len(inputs)}")
    for spec, x in zip(signature.inputs, inputs):
        problem = _array_problem(spec, x, signature.kind, context)
        if problem is None and len(x.shape) != len(spec.shape):
            problem = f"expected rank {len(spec.shape)} ({spec.type_text}), got shape {tuple(x.shape)}"
        if problem is not None:
            return InputError(f"{where}, input {spec.name}: {problem}")
    problem = _size_problem(signature, inputs)
    if problem is not None:
        return InputError(f"{where}, {problem}")
    return InputError(f"{where}: the inputs do not match ({signature.text()}); got "
                      f"{', '.join(_describe(x) for x in inputs)}")


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return f"{type(x).__module__}.{type(x).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _array_problem(spec: InputSpec, x: Any, kind: str, context: Any) -> str | None:
    want = spec.dtype
    if kind == "torch":
        import torch

        from .host_call import TORCH_NATIVE
        if want not in TORCH_NATIVE:  # such values are NumPy arrays in the torch backend
            import numpy as np
            if not isinstance(x, np.ndarray):
                return f"expected a numpy.ndarray of {spec.type_text} (PyTorch has no {want.short}), got {_describe(x)}"
            if x.dtype != want.numpy:
                return f"expected dtype {want.short}, got {x.dtype.name}"
            return None
        if not isinstance(x, torch.Tensor):
            fix = "; pass torch.from_numpy(x)" if type(x).__name__ == "ndarray" else ""
            return f"expected a torch.Tensor of {spec.type_text}, got {_describe(x)}{fix}"
        if x.dtype != getattr(torch, want.name):
            return f"expected dtype {want.short} (torch.{want.name}), got {x.dtype}; convert it with .to(torch.{want.name})"
        if context is not None and x.device != context:
            return (f"is on {x.device}, the module's weights on {context}; move the input with .to('{context}') "
                    f"or the module with .to('{x.device}')")
        return None
    ndarray = getattr(context, "ndarray", None)
    module = getattr(context, "__name__", "numpy")
    if ndarray is not None and not isinstance(x, ndarray):
        fix = "; pass x.numpy()" if type(x).__module__.startswith("torch") else ""
        if module == "cupy":
            fix = "; pass cupy.asarray(x)"
        return f"expected a {module}.ndarray of {spec.type_text}, got {_describe(x)}{fix}"
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        return f"expected an array of {spec.type_text}, got {_describe(x)}"
    try:
        got = to_dtype(x.dtype)
    except TypeError:
        got = None
    if got != want:
        return f"expected dtype {want.short}, got {x.dtype}; convert it with .astype({module}.{want.numpy.name})"
    return None


def _size_problem(signature: Signature, inputs: Sequence[Any]) -> str | None:
    """Bind each symbol from the first axis that is exactly it (then solve the others), and
    check every axis against its declared size."""
    bound: dict[str, int] = {}
    origin: dict[str, str] = {}
    axes = [(spec, k, s, int(x.shape[k])) for spec, x in zip(signature.inputs, inputs) for k, s in enumerate(spec.shape)]
    for spec, k, s, got in axes:
        if not isinstance(s, int) and s.is_Symbol and s.name not in bound:
            if got < 1:
                return f"input {spec.name}: axis {k} is the size {s.name}, which must be at least 1, got {got}"
            bound[s.name], origin[s.name] = got, f"input {spec.name}, axis {k}"
    for _ in range(2):  # sizes such as 2*L + 1 whose symbol no axis gives directly
        for spec, k, s, got in axes:
            if isinstance(s, int):
                continue
            unknown = [x.name for x in s.free_symbols if x.name not in bound]
            if len(unknown) == 1:
                from ..ir.sizes import bind_symbols
                try:
                    bind_symbols(s, got, bound, f"input {spec.name}, axis {k}")
                except ValueError as exc:
                    return f"{exc} (shape {_shape_of(inputs, spec, signature)})"
                if unknown[0] in bound:
                    origin[unknown[0]] = f"input {spec.name}, axis {k}"
                    if bound[unknown[0]] < 1:
                        return (f"input {spec.name}: axis {k} ({format_size(s)}) gives {unknown[0]} = "
                                f"{bound[unknown[0]]}, which must be at least 1")
    for spec, k, s, got in axes:
        if isinstance(s, int):
            if s != got:
                return (f"input {spec.name}: axis {k} must be {s} ({spec.type_text}), got {got} "
                        f"(shape {_shape_of(inputs, spec, signature)})")
            continue
        names = sorted(x.name for x in s.free_symbols)
        if any(n not in bound for n in names):
            continue
        want = evaluate(s, bound)
        if want != got:
            given = "; ".join(f"{n} = {bound[n]} from {origin[n]}" for n in names)
            return (f"input {spec.name}: axis {k} must be {format_size(s)} = {want} ({given}), got {got} "
                    f"(shape {_shape_of(inputs, spec, signature)})")
    return None


def _shape_of(inputs, spec: InputSpec, signature: Signature) -> tuple:
    return tuple(inputs[signature.inputs.index(spec)].shape)


# -- the fast path: generated code ---------------------------------------------------------------


def guard_function(signature: Signature, params: Sequence[str], bindings: Sequence[tuple[str, str]],
                   symbols: dict[str, str], renderer, input_check, context_param: str) -> list[str]:
    """The source of ``check_inputs(inputs, <context_param>)``.

    ``bindings``: ``(symbol, text)`` binding each size symbol from the input shapes, in order
    (chunkc.backends.bindings); ``symbols``: symbol -> its identifier; ``renderer`` renders a
    size over those identifiers; ``input_check(param, dtype)`` is the backend's condition that
    ``param`` is an array of ``dtype`` where the program runs.
    """
    n = len(params)
    lines = [f"def check_inputs(inputs, {context_param}):",
             '    """The inputs when they match SIGNATURE (count, array type, dtype, device, rank, sizes),',
             '    else the InputError that names the input at fault and what it expected."""',
             f"    if len(inputs) == {n}:"]
    if n == 0:
        lines.append("        return inputs")
        lines.append(f"    raise guards.explain(SIGNATURE, inputs, {context_param})")
        return lines
    lines.append(f"        {', '.join(params)}{',' if n == 1 else ''} = inputs")
    first = [f"{input_check(p, spec.dtype)} and {p}.ndim == {len(spec.shape)}" for p, spec in zip(params, signature.inputs)]
    lines += _condition(first, "        ")
    body = "            "
    direct = {text for _, text in bindings}
    for name, text in bindings:
        lines.append(f"{body}{symbols[name]} = {text}")
    checks = [f"{symbols[name]} >= 1" for name, _ in bindings]
    for p, spec in zip(params, signature.inputs):
        for k, s in enumerate(spec.shape):
            axis = f"{p}.shape[{k}]"
            if isinstance(s, int):
                checks.append(f"{axis} == {s}")
            elif axis not in direct:
                checks.append(f"{axis} == {renderer(s)}")
    if checks:
        lines += _condition(checks, body)
        lines.append(f"{body}    return inputs")
    else:
        lines.append(f"{body}return inputs")
    lines.append(f"    raise guards.explain(SIGNATURE, inputs, {context_param})")
    return lines


def _condition(parts: list[str], indent: str) -> list[str]:
    """``if (a and b ...):`` wrapped at about 100 characters."""
    out, line = [], f"{indent}if ("
    for k, part in enumerate(parts):
        piece = part + (" and " if k < len(parts) - 1 else "):")
        if len(line) + len(piece) > 110 and line.strip() != "if (":
            out.append(line.rstrip())
            line = indent + "        "
        line += piece
    out.append(line)
    return out


__all__ = ["InputSpec", "Signature", "explain", "guard_function"]
