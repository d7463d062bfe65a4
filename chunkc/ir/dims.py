"""Dimension records: how each output axis of an op relates to its input axes.

For every output axis an op states one :class:`AxisFlow`:

``carry``  slicing the output along this axis needs only the matching slice of
           each listed input axis (``sources``); every input not listed is used
           whole.  ``ratio`` is input extent per output extent along the axis
           (1 for elementwise ops; 64 for the head axis of ``[L, 768] -> [L, 12, 64]``).
           A carry with no sources makes any slice from whole inputs alone
           (``full``: every slice is the same constant).  A *positional* carry
           also needs to know where the slice starts (``arange``'s values,
           ``tril``'s diagonal, causal attention's queries): the op's record then
           has ``slice_attrs``, which gives the attributes that compute the
           slice ``[start, start + length)`` of that axis.
``mix``    the op computes across this axis (softmax's axis, cumsum, a conv's
           spatial axes): the axis cannot be chunked through this op.
``new``    the axis comes from no input axis (arange, full, the K axis of a new
           broadcast): it cannot be chunked through this op either.
``window`` a sliding window (convolution, pooling): output rows ``[s, e)`` need
           input rows ``[stride*s - pad_lo, stride*(e-1) - pad_lo + extent)`` of
           the one source (its :class:`AxisWindow`), the rows outside the input
           filled with the op's padding value.  Slices overlap (a *halo*), so code
           that only knows ``carry`` treats the axis as not chunkable; the halo
           search (:mod:`chunkc.passes.halo`) reads the window.

Input axes that no output axis lists are reduced or contracted.  Chunk-flow
search reads only these records: it never asks which op it is looking at.

A reduced input axis may also *accumulate* (an op record's ``accumulates``, see
:class:`Accumulation`): the op run on a slice of that axis gives a *partial* result of
the output's full shape, and partials of consecutive slices merge with an associative
elementwise combiner into the result over the whole axis.  A chunk loop may then read
that input sliced along the axis and keep the output whole, as an accumulator.  A
contraction (matmul, einsum) accumulates over its contracted axis only when the other
operand is sliced along its own contracted axis too: the record names such *partners*.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import sympy

AxisKind = Literal["carry", "mix", "new", "window"]


@dataclass(frozen=True)
class AxisWindow:
    """The window of a ``window`` axis: output row ``o`` reads input rows
    ``[stride*o - pad_lo, stride*o - pad_lo + extent)``; rows outside the input hold ``fill``.
    To run the op on rows already padded, set entry ``pad_index`` of attribute ``pad_attr``
    (a tuple of (begin, end) pairs) to ``(0, 0)``."""

    stride: int
    extent: int  # dilation * (kernel - 1) + 1
    pad_lo: int
    pad_hi: int
    pad_attr: str  # the attribute that holds the padding
    pad_index: int  # which entry of it is this axis
    fill: float = 0.0  # the padding value (-inf for max pooling)

    def __str__(self) -> str:
        return f"win(s{self.stride}, k{self.extent}, p{self.pad_lo}:{self.pad_hi})"


@dataclass(frozen=True)
class AxisSource:
    input: int  # index into node.inputs
    axis: int  # axis of that input
    ratio: Fraction = Fraction(1)  # input extent / output extent along the axis
    window: AxisWindow | None = None  # set on the source of a ``window`` axis

    def __str__(self) -> str:
        r = "" if self.ratio == 1 else f"*{self.ratio}"
        w = "" if self.window is None else f" {self.window}"
        return f"in{self.input}.{self.axis}{r}{w}"


@dataclass(frozen=True)
class AxisFlow:
    kind: AxisKind
    sources: tuple[AxisSource, ...] = ()
    positional: bool = False  # a slice also needs its start (see the module docstring)

    @property
    def chunkable(self) -> bool:
        return self.kind == "carry"

    def __str__(self) -> str:
        if self.kind == "window":
            return f"window({self.sources[0]})"
        if self.kind != "carry":
            return self.kind
        name = "carry_at" if self.positional else "carry"
        return name + "(" + ", ".join(str(s) for s in self.sources) + ")"


MIX = AxisFlow("mix")
NEW = AxisFlow("new")
ANY_SLICE = AxisFlow("carry")  # any slice comes from whole inputs (full)
POSITION = AxisFlow("carry", positional=True)  # any slice from whole inputs, given its start (arange)


def carry(*sources: tuple) -> AxisFlow:
    """``carry((0, 1), (1, 1))``: the axis carries input 0 axis 1 and input 1 axis 1."""
    return AxisFlow("carry", tuple(AxisSource(s[0], s[1], Fraction(s[2]) if len(s) > 2 else Fraction(1)) for s in sources))


def windowed(input: int, axis: int, win: AxisWindow) -> AxisFlow:
    """A ``window`` axis reading ``axis`` of input ``input`` through ``win`` (ratio: its stride)."""
    return AxisFlow("window", (AxisSource(input, axis, Fraction(win.stride), win),))


def at_position(flow: AxisFlow) -> AxisFlow:
    """``flow`` made positional: the op needs the start of the slice it computes."""
    return AxisFlow(flow.kind, flow.sources, positional=True)


# Where a chunk starts and stops inside a loop, in units of the region's extent.  Records'
# ``slice_attrs`` receive expressions of these; code generators bind them to the loop's
# variables, the reference interpreter of plans to numbers.
# (Symbols as every size is, so that sizes.evaluate binds them by name.)
LOOP_START = sympy.Symbol("chunk_start", integer=True, positive=True)
LOOP_STOP = sympy.Symbol("chunk_stop", integer=True, positive=True)
# The same for a loop nested in a region's loop (chunkc.passes.plan, ChunkRegion.inner): one pair
# of symbols per nesting level, so that a node of the inner loop may name both loops' bounds.
INNER_START = sympy.Symbol("inner_start", integer=True, positive=True)
INNER_STOP = sympy.Symbol("inner_stop", integer=True, positive=True)


# How two partials merge.  The elementwise binary functions have this name, and an ``out=``
# argument, in NumPy, CuPy and PyTorch.  ``softmax_merge`` merges partial softmax-weighted sums
# packed as ``[..., n + 1]``: ``[..., :n]`` the sum normalized over the slice, ``[..., n]`` the
# log-sum-exp of the slice's weights (-inf, with zeros before it, where the slice weighs
# nothing); the merged lse is their logaddexp and each sum is weighted by exp(its lse - the
# merged one) (chunkc.passes.accumulate.softmax_merge, attention over key chunks).
Combine = Literal["add", "multiply", "maximum", "minimum", "logical_or", "logical_and", "logaddexp", "softmax_merge"]


@dataclass(frozen=True)
class Accumulation:
    """How an op's output over a whole input axis follows from its outputs over slices of it.

    The partial of a slice is the op run on the slice (with the same attributes), first
    multiplied by the slice's share of the axis (``slice length / axis length``) when
    ``share`` is set (a mean: the mean over the axis is the share-weighted sum of the
    slices' means).  Partials merge with ``combine`` (associative and commutative), in
    any grouping; the first partial is the initial value, so no identity is needed, and
    the merged value is the result (nothing to finish).

    ``partners`` are the (input, axis) pairs of the op's other inputs that the loop slices
    together with the accumulated axis, chunk for chunk (a contraction's other operand:
    ``A[:, c] @ B[c, :]``); every input neither accumulated nor a partner is read whole.
    A partner axis has the accumulated axis's size.

    ``offset_attr`` names the attribute that places a slice along the axis, when the op's
    result depends on where its elements sit (causal attention over a slice of its keys:
    ``key_offset``): a loop adds the slice's first element to it.
    """

    combine: Combine
    share: bool = False
    partners: tuple[tuple[int, int], ...] = ()
    offset_attr: str | None = None


SUM = Accumulation("add")
MEAN = Accumulation("add", share=True)


OutputDims = tuple[AxisFlow, ...]  # one per axis of one output
DimRecord = tuple[OutputDims, ...]  # one per output of the node
