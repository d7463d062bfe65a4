"""The op registry: one record per op, looked up by name, never dispatched on.

A record (:class:`OpDef`) holds everything chunkc knows about an op:

* ``infer``      shape and dtype inference, run when a node is built; it raises
                 :class:`~chunkc.errors.IRError` naming the op, input and sizes;
* ``dims``       the dimension record (see :mod:`chunkc.ir.dims`);
* ``flops``      a FLOP count (defaults to one per output element);
* ``view``       whether output 0 aliases input 0's storage (no new memory);
* ``reference``  the NumPy implementation, written against an array module
                 ``xp`` so that the NumPy/CuPy backend can call it too;
* ``torch``      the PyTorch lowering: a call template or a function
                 (see :mod:`chunkc.ir.lowering`);
* ``attrs``      the attribute names with their defaults (``REQUIRED`` if none).
* ``keeps_layout`` whether a fresh output takes its layout from the inputs (elementwise
                 kernels: the backend's rule, see :mod:`chunkc.ir.layout`) rather than
                 being C-contiguous;
* ``exact_dtypes`` whether the reference takes ml_dtypes values (bf16, f8, i4...) as
                 they are, rather than widened (chunkc/ir/reference.py).
* ``elements``   output 0's element formula from its inputs' (see :mod:`chunkc.ir.elements`).
* ``canonicalize`` a rewrite of a node into the same op with other inputs or attributes
                 that computes the same value faster, or into an existing value it is
                 proven equal to (:class:`Forward`); the ``canonicalize`` pass runs them.
* ``saves``      what the backward of the PyTorch lowering keeps from the forward, for the
                 memory of a training step (see :mod:`chunkc.ir.grad`).

Passes ask the record; unknown ops are built as ``opaque`` nodes whose record
says that no axis carries through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import IRError
from .dims import DimRecord, MIX, NEW, AxisFlow
from .grad import check_saves
from .lowering import OnHost, TorchLowering, check_template
from .sizes import Size
from .types import TensorType


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

InferFn = Callable[[Sequence[TensorType], Mapping[str, Any]], tuple[TensorType, ...]]
DimsFn = Callable[[Sequence[TensorType], Mapping[str, Any], Sequence[TensorType]], DimRecord]
FlopsFn = Callable[[Sequence[TensorType], Mapping[str, Any], Sequence[TensorType]], Size]


@dataclass(frozen=True)
class Forward:
    """A ``canonicalize`` rule's answer: the node's only output equals ``value``, an existing
    value of the same type (the node is dropped and its readers read ``value``)."""

    value: Any  # chunkc.ir.graph.Value


def _default_flops(ins, attrs, outs) -> Size:
    total: Size = 0
    for o in outs:
        total = total + o.numel()
    return total


@dataclass(frozen=True)
class OpDef:
    name: str
    infer: InferFn
    dims: DimsFn
    reference: Callable[..., Any] | None
    num_inputs: tuple[int, int | None] = (1, 1)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    flops: FlopsFn = _default_flops
    # Views: given input 0's strides (in elements), the strides of output 0 when it
    # aliases input 0's storage, or None when the op must allocate (reshape of a
    # non-contiguous input). Ops without it always allocate a fresh contiguous output.
    view_strides: Callable[..., tuple | None] | None = None
    num_outputs: int | None = 1  # None: decided by infer (split, chunk)
    # Temporary bytes the backends' kernels allocate beyond the outputs (in elements
    # of the output dtype), e.g. a reduction's intermediate; None means none.
    workspace: FlopsFn | None = None
    # The same for the PyTorch backend's code: the lowering's and the ATen kernels'
    # temporaries (a chunkc.ir.kernel_workspace.TorchWorkspace, by source and device, or a
    # function of the lowering's own); None means none.
    torch_workspace: FlopsFn | None = None
    size_attrs: tuple[str, ...] = ()  # attributes holding sizes or tuples of sizes ("L" -> symbol L)
    # The attribute that states output 0's shape, one entry per trailing axis (reshape,
    # expand: every axis; interpolate: the resized ones): inside a chunk loop its chunk axis
    # entry becomes the rows the node computes (chunkc.passes.plan_index.loop_attrs).
    shape_attr: str | None = None
    # For ops with positional axes (see chunkc.ir.dims): ``slice_attrs(attrs, in_types,
    # axis, start, length)`` -> the attributes that make the node compute the slice
    # [start, start + length) of output axis ``axis`` (start and length are sizes that
    # may name the loop's chunk_start and chunk_stop).
    slice_attrs: Callable[..., dict] | None = None
    # Whether running the op again on the same inputs is allowed and costs what ``flops``
    # says (rematerialization recomputes cheap ops); False for ops run by another framework.
    recompute: bool = True
    # The PyTorch backend's code for the op: a call template ("torch.exp({0})") or a
    # function of the node's lowering context (chunkc.ir.lowering); None: it has none.
    torch: TorchLowering | None = None
    # The reference handles bf16/float8/int4... (ml_dtypes) values itself; otherwise it runs
    # on them widened to f32/i8/u8 (see chunkc/ir/reference.py).
    exact_dtypes: bool = False
    # A fresh output is laid out in the order of the inputs' strides, as elementwise kernels
    # do (TensorIterator, NumPy's order='K'; the backend record says whose rule): a permuted
    # input gives a permuted output.  False: outputs are C-contiguous.
    keeps_layout: bool = False
    # Output 0's element formula from the inputs' (chunkc.ir.elements); None: the op has none.
    elements: Callable[..., Any] | None = None
    # ``canonicalize(node, analysis) -> (inputs, attrs) | Forward | None``: the same op on these
    # inputs with these attributes computes the node's outputs, faster (a mask proven causal
    # becomes is_causal), or the node's output is an existing value (a ``where`` whose
    # condition always holds); ``analysis`` is the graph's chunkc.ir.elements.ElementAnalysis.
    canonicalize: Callable[..., Any] | None = None
    # What autograd keeps from the forward for this op's backward (chunkc.ir.grad): "inputs",
    # "outputs", "cross" (an input that another input's gradient needs: products), input
    # positions; () when the backward needs only shapes (views, add, concat).
    saves: tuple = ("inputs",)
    # ``accumulates(in_types, attrs, input, axis) -> Accumulation | None``: whether the op's
    # outputs over input ``input``'s whole axis ``axis`` (an axis it reduces) follow from its
    # outputs over slices of it, and how (chunkc.ir.dims.Accumulation); None: never.
    accumulates: Callable[..., Any] | None = None
    # ``split_statistics(graph, node) -> (statistics node, apply node, positions)``: for an op
    # whose statistics mix axes that a chunk loop could otherwise slice (group_norm's space),
    # build before ``node`` a statistics op that accumulates over them and an op elementwise
    # along them that applies the statistics; ``positions`` are the apply node's inputs that
    # were ``node``'s (chunkc.passes.split_statistics).  None: the op is not split.
    split_statistics: Callable[..., Any] | None = None
    # ``split_accumulating(graph, node) -> (statistics node, apply node, positions[, "statistics"]) | None``:
    # the same for an op whose split costs time (attention over its keys: an op accumulating
    # in one pass, then a slice of its result): autochunk plans the split graph only when no
    # other meets the budget; a fourth element "statistics" says ``positions`` index the
    # statistics node's inputs (the apply node reads only its result); None from the
    # function: this node is not split.
    split_accumulating: Callable[..., Any] | None = None
    # Whether the output jumps by a whole step where a floating-point input moves by one ulp
    # (floor, round, a float cast to integers or to a narrower float, a comparison of floats): two correct programs
    # that round an input differently (another backend's kernel, another summation order) may
    # differ there by the step.  A bool, or ``fn(in_types, attrs) -> bool``.
    discontinuous: bool | Callable[..., bool] = False
    # Whether the outputs are a function of the inputs and attributes alone and the call does
    # nothing else (no random numbers, no effects): two nodes of the op on the same inputs with
    # the same attributes compute the same values, so common-subexpression elimination may
    # keep one (chunkc.passes.cse).  False for ops chunkc does not model (opaque).
    pure: bool = True
    # ``rows_kernel(in_types, attrs) -> str | None``: the measured curve of seconds per query row
    # that the op's PyTorch kernel follows (chunkc.passes.cost.KernelTable.attention: "none",
    # "bool", "float"), output 0's axis -2 being its query rows: a fused attention kernel blocks
    # its queries, and on a chunk of few rows it runs smaller blocks, slower per row.  None: the
    # op's time per row does not depend on how many rows a call computes beyond its FLOPs' rate.
    rows_kernel: Callable[..., str | None] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        check_saves(self.name, self.saves, self.num_inputs[1])
        if isinstance(self.torch, str):
            check_template(self.name, self.torch, tuple(self.attrs), self.num_inputs[1])
        elif self.torch is not None and not callable(self.torch) and not isinstance(self.torch, OnHost):
            raise IRError(f"op {self.name}: torch lowering must be a template string, a function or ON_HOST, "
                          f"got {type(self.torch).__name__}")

    @property
    def may_alias(self) -> bool:
        return self.view_strides is not None

    def is_discontinuous(self, in_types: Sequence[Any], attrs: Mapping[str, Any]) -> bool:
        """The ``discontinuous`` record for a node with these input types and attributes."""
        if callable(self.discontinuous):
            return bool(self.discontinuous(in_types, attrs))
        return bool(self.discontinuous)

    def bind_attrs(self, given: Mapping[str, Any], node_name: str = "") -> dict[str, Any]:
        """Fill defaults and refuse unknown or missing attributes."""
        where = f"op {self.name}" + (f" (node {node_name})" if node_name else "")
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise IRError(f"{where}: unknown attribute(s) {sorted(unknown)}; known: {sorted(self.attrs)}")
        out = {}
        for key, default in self.attrs.items():
            if key in given:
                out[key] = _bind_size_attr(given[key], f"{where}: attribute {key}") if key in self.size_attrs \
                    else given[key]
            elif default is REQUIRED:
                raise IRError(f"{where}: missing required attribute {key!r}")
            else:
                out[key] = default
        return out

    def check_arity(self, n: int, node_name: str = "") -> None:
        lo, hi = self.num_inputs
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi if hi is not None else 'any number of'}"
            where = f"op {self.name}" + (f" (node {node_name})" if node_name else "")
            raise IRError(f"{where}: takes {want} inputs, got {n}")


def _bind_size_attr(value, where: str):
    """Sizes in an attribute: a string names a symbol (or an expression of symbols), as in
    shapes; ints and expressions are normalized; floats stay for the op's inference to judge."""
    from .sizes import normalize
    if isinstance(value, (tuple, list)):
        return tuple(_bind_size_attr(v, where) for v in value)
    if value is None or isinstance(value, float):
        return value
    try:
        return normalize(value)
    except (TypeError, ValueError) as exc:
        raise IRError(f"{where}: {exc}") from None


def concrete_attrs(attrs: Mapping[str, Any], bindings: Mapping[str, int]) -> dict[str, Any]:
    """Attributes with every symbolic size evaluated (for running a node)."""
    import sympy
    from .sizes import evaluate

    def conv(v):
        if isinstance(v, tuple):
            return tuple(conv(x) for x in v)
        if isinstance(v, sympy.Basic):
            return evaluate(v, bindings)
        return v
    return {k: conv(v) for k, v in attrs.items()}


def has_symbolic_attrs(attrs: Mapping[str, Any]) -> bool:
    import sympy

    def sym(v):
        return any(sym(x) for x in v) if isinstance(v, tuple) else isinstance(v, sympy.Basic)
    return any(sym(v) for v in attrs.values())


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name!r} registered twice")
    _REGISTRY[op.name] = op
    return op


# The table is complete once chunkc.ir is imported: its __init__ imports chunkc.ir.ops,
# whose modules register every op (the registry itself imports none of them).


def lookup(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IRError(f"unknown op {name!r}; build it with op='opaque' and target={name!r} to keep it as a barrier") from None


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)


def barrier_dims(ins, attrs, outs) -> DimRecord:
    """No axis carries through: the safe default for ops chunkc does not model."""
    return tuple(tuple(NEW for _ in o.shape) for o in outs)


def all_mix(ins, attrs, outs) -> DimRecord:
    return tuple(tuple(MIX for _ in o.shape) for o in outs)


__all__ = ["OpDef", "Forward", "REQUIRED", "register", "lookup", "has_op", "all_ops", "barrier_dims", "all_mix", "AxisFlow"]
