"""How an op record says what its PyTorch code is, and the helpers lowerings share.

An op record (:class:`~chunkc.ir.registry.OpDef`) holds its PyTorch lowering in
its ``torch`` field, in one of two forms:

* a **call template** for the simple ops, a :meth:`str.format` pattern whose
  fields are filled with source text::

      torch="torch.exp({0})"
      torch="F.leaky_relu({0}, {negative_slope})"
      torch="{0}.reshape({out_shape})"

  ``{0}``, ``{1}``... the expression of input *i*; ``{args}`` every input,
  joined by ``", "``; ``{<attribute>}`` the attribute's value as a literal;
  ``{out_shape}`` output 0's shape (inside a chunk loop the chunked axis is the
  chunk's length); ``{out_dtype}`` output 0's dtype (``torch.float32``);
  ``{device}`` the variable holding the device new tensors go to.  Templates are
  checked when the record is built: an unknown field names the op.

* a **lowering function** ``fn(ctx) -> str`` for the rest, defined beside the
  op in its family module.  ``ctx`` is a :class:`LoweringContext` (the code
  generator's view of one node); the function returns the expression computing
  the node — its value when the node has one output, a sequence of its values
  when it has several.

Lowerings generate source text; none imports torch when chunkc is imported
(:func:`operands` asks torch for its promotion rule lazily, at generation time).
"""

from __future__ import annotations

import functools
import string
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, Union

from ..errors import IRError
from .dtypes import DType

if TYPE_CHECKING:  # only for type hints: the IR never imports the backends
    from ..errors import ChunkcError
    from .graph import Node, Value
    from .sizes import Size
    from .types import TensorType


class LoweringContext(Protocol):
    """What a lowering function sees of one node (implemented by the code generator)."""

    node: "Node"

    @property
    def op(self) -> str:
        """The op's name."""

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The node's attributes (Python values, sizes possibly symbolic)."""

    @property
    def args(self) -> list[str]:
        """The expression of every input, in order."""

    def arg(self, i: int) -> str:
        """The expression of input ``i`` (inside a chunk loop: its chunk, when it is chunked)."""

    def num_inputs(self) -> int: ...

    def in_type(self, i: int) -> "TensorType": ...

    def out_type(self, i: int = 0) -> "TensorType": ...

    def scalar(self, i: int) -> str | None:
        """A Python literal for input ``i`` when it is a 0-d int/float/bool weight, else None."""

    def attr(self, key: str) -> str:
        """Attribute ``key`` as a literal."""

    def lit(self, value: Any) -> str:
        """Any plain value (int, float, bool, str, None, size, dtype, tuples of these) as a literal."""

    def size(self, s: "Size") -> str:
        """A size as an expression of the size variables."""

    def dtype(self, dt: DType) -> str:
        """A dtype as the backend spells it."""

    def shape(self, value: "Value") -> list[str]:
        """The sizes of ``value``, the chunked axis replaced by the chunk's length inside a loop."""

    def out_shape(self, i: int = 0) -> str:
        """Output ``i``'s shape as a tuple literal (chunk-aware, as :meth:`shape`)."""

    def in_shape(self, i: int) -> str:
        """Input ``i``'s shape as a tuple literal (chunk-aware, as :meth:`shape`)."""

    def chunk_range(self, value: "Value") -> tuple[int, str, str] | None:
        """``(axis, start, stop)`` when ``value`` is chunked in the enclosing chunk loop: the
        axis and the source text of the first and one-past-last index of this iteration's
        chunk along it (in elements of that axis); None outside a loop or for a value used whole."""

    def helper(self, hint: str, rhs: str) -> str:
        """A module-level ``name = rhs`` (deduplicated); returns ``name``."""

    def device(self) -> str:
        """The variable holding the device new tensors go to (bound at entry when asked for)."""

    def fail(self, message: str) -> "ChunkcError":
        """An error naming the backend, the node and the op, to raise."""


LoweringFn = Callable[[LoweringContext], str]
# What a record's ``torch`` field holds: a call template or a lowering function.
class OnHost:
    """The ``torch`` lowering of ops PyTorch has no kernel for (float8_e8m0, DFT, image
    decoding): the PyTorch backend runs the op's NumPy reference on the host, moving
    tensors to and from it (chunkc/backends/host_call.py)."""

    def __repr__(self) -> str:
        return "ON_HOST"


ON_HOST = OnHost()


# A record's ``torch`` field: a call template, a function, or ON_HOST
TorchLowering = Union[str, LoweringFn, OnHost]

# Template fields that are not attributes (an attribute may not take one of these names).
TEMPLATE_FIELDS = ("args", "out_shape", "out_dtype", "device")


def check_template(op: str, template: str, attrs: Sequence[str], max_inputs: int | None) -> None:
    """Refuse a template with a field that is neither an input, an attribute nor a
    :data:`TEMPLATE_FIELDS` name, or that uses a conversion or a format spec."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise IRError(f"op {op}: torch template {template!r} is malformed: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion:
            raise IRError(f"op {op}: torch template field {{{field}}} has a conversion or format spec; "
                          "fields are plain names")
        if field.isdigit():
            if max_inputs is not None and int(field) >= max_inputs:
                raise IRError(f"op {op}: torch template uses input {field} but the op takes at most "
                              f"{max_inputs} input(s)")
            continue
        if field in TEMPLATE_FIELDS:
            if field in attrs:
                raise IRError(f"op {op}: attribute {field!r} hides the template field of that name")
            continue
        if field not in attrs:
            known = ", ".join(["{0}, {1}..."] + [f"{{{f}}}" for f in TEMPLATE_FIELDS] + [f"{{{a}}}" for a in attrs])
            raise IRError(f"op {op}: torch template field {{{field}}} is neither an input nor an attribute "
                          f"(known: {known})")


class _Inputs:
    """Input expressions, asked for only when a template uses them (reading a weight marks it used)."""

    def __init__(self, ctx: LoweringContext):
        self.ctx = ctx

    def __getitem__(self, i: int) -> str:
        return self.ctx.arg(i)


class _Fields:
    """Named template fields, rendered only when a template uses them."""

    def __init__(self, ctx: LoweringContext):
        self.ctx = ctx

    def __getitem__(self, key: str) -> str:
        ctx = self.ctx
        if key == "args":
            return ", ".join(ctx.args)
        if key == "out_shape":
            return ctx.out_shape(0)
        if key == "out_dtype":
            return torch_dtype(ctx.out_type().dtype)
        if key == "device":
            return ctx.device()
        return ctx.attr(key)


def render_template(template: str, ctx: LoweringContext) -> str:
    """The source text of ``template`` for the node of ``ctx``."""
    return string.Formatter().vformat(template, _Inputs(ctx), _Fields(ctx))  # type: ignore[arg-type]


def as_function(lowering: TorchLowering) -> LoweringFn:
    """A record's ``torch`` field as a lowering function (templates are rendered)."""
    if isinstance(lowering, str):
        return functools.partial(render_template, lowering)
    return lowering


# -- helpers lowering functions share -------------------------------------------------




def torch_dtype(dt: DType) -> str:
    """``torch.float32`` for chunkc's f32 (names come from chunkc's dtype table)."""
    return f"torch.{dt.name}"


def tuple_literal(items: Sequence[str]) -> str:
    """``(a,)`` for one item, ``(a, b)`` otherwise (items are already source text)."""
    return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"


def keywords(**kwargs: str | None) -> str:
    """``, k=v`` for each keyword whose text is not None."""
    return "".join(f", {k}={v}" for k, v in kwargs.items() if v is not None)


def fill_none(args: list[str], n: int) -> list[str]:
    """Optional trailing inputs that are absent become ``None``."""
    return args + ["None"] * (n - len(args))


@functools.lru_cache(maxsize=None)
def _torch_promotes_to(dtypes_and_ranks: tuple) -> DType:
    """The dtype PyTorch computes a promoting op in (0-d tensors weigh less than others)."""
    import torch  # generation time only: importing chunkc never imports torch

    dt, rank = None, 0
    for name, r in dtypes_and_ranks:
        t = torch.empty((0,) * r, dtype=getattr(torch, name))
        if dt is None:
            dt, rank = t.dtype, r
            continue
        dt = torch.result_type(torch.empty((0,) * rank, dtype=dt), t)
        rank = max(rank, r)
    return DType[str(dt).removeprefix("torch.")]


def torch_result_dtype(types: Sequence["TensorType"]) -> DType:
    """The dtype PyTorch computes a promoting op on tensors of ``types`` in (torch's rule,
    which may differ from chunkc's for 0-d tensors); imports torch."""
    return _torch_promotes_to(tuple((t.dtype.name, t.rank) for t in types))


def lowering_casts(types: Sequence["TensorType"], out: DType, strict: bool = False) -> tuple[bool, ...]:
    """Which of ``types`` :func:`operands` converts to ``out`` (a fresh tensor each): all
    those of another dtype when the call wants ``out`` (``strict``) or PyTorch would
    compute in another dtype (torch is asked only when the dtypes differ)."""
    mixed = len({t.dtype for t in types}) > 1
    cast_needed = strict or (torch_result_dtype(types) if mixed else types[0].dtype) != out
    return tuple(cast_needed and t.dtype != out for t in types)


def operands(ctx: LoweringContext, indices, out: DType, inline_scalars: bool = False,
             strict: bool = False) -> list[str]:
    """Argument text for a promoting op, converted so that the op computes in ``out``.

    ``strict``: the PyTorch call wants every operand in ``out`` (matmul, linear).
    With ``inline_scalars``, a 0-d weight of the same dtype as the other operand
    and the result is written as a Python number (``x * 0.125``).
    """
    types = [ctx.in_type(i) for i in indices]
    casts = lowering_casts(types, out, strict)
    texts = []
    for i, t, cast in zip(indices, types, casts):
        others = [u for j, u in zip(indices, types) if j != i]
        if inline_scalars and t.dtype == out and all(u.dtype == out and u.rank > 0 for u in others):
            lit = ctx.scalar(i)
            if lit is not None:
                texts.append(lit)
                continue
        text = ctx.arg(i)
        if cast:
            text = f"{text}.to({torch_dtype(out)})"
        texts.append(text)
    return texts


def all_operands(ctx: LoweringContext, strict: bool = False) -> list[str]:
    """:func:`operands` of every input, in output 0's dtype."""
    return operands(ctx, tuple(range(ctx.num_inputs())), ctx.out_type().dtype, strict=strict)


__all__ = ["ON_HOST", "OnHost", "LoweringContext", "LoweringFn", "TorchLowering", "TEMPLATE_FIELDS", "check_template", "render_template",
           "as_function", "torch_dtype", "tuple_literal", "keywords", "fill_none", "operands", "all_operands",
           "torch_result_dtype", "lowering_casts"]
