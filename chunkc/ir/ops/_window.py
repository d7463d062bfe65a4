"""Sliding windows shared by conv, conv_transpose and the pools: attribute
defaults, output sizes (static or symbolic), when a spatial axis carries, and
the per-kernel-offset index ranges the NumPy references loop over.

A spatial axis of a windowed op carries (ratio ``stride``) exactly when its
windows tile the input without overlap or padding: the effective kernel
``dilation*(kernel-1) + 1`` fits in one stride, no padding is added on that
axis, and the input is ``stride`` times the output.  Then output rows
``[a, b)`` read exactly input rows ``[a*stride, b*stride)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from ..dims import AxisFlow, AxisSource, AxisWindow, windowed
from ..lowering import LoweringContext
from ..sizes import Size, ceildiv, floordiv, format_size, normalize, sizes_equal
from ._common import carry_from, fail, int_tuple, pairs


@dataclass(frozen=True)
class Window:
    """Per spatial axis: kernel, stride, dilation, (begin, end) padding."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[Size, Size], ...]

    @property
    def rank(self) -> int:
        return len(self.kernel)

    def effective(self, a: int) -> int:
        return self.dilation[a] * (self.kernel[a] - 1) + 1

    @property
    def symmetric(self) -> bool:
        """Each axis is padded alike at both ends (what PyTorch's window ops can take)."""
        return all(b == e for b, e in self.padding)


def window(op: str, nsp: int, kernel, stride, padding, dilation, stride_default=None) -> Window:
    """Check and fill the window attributes (None means the default on every axis)."""
    kernel = int_tuple(op, "kernel", kernel, nsp, minimum=1)
    if stride is None:
        stride = stride_default if stride_default is not None else (1,) * nsp
    stride = int_tuple(op, "stride", stride, nsp, minimum=1)
    dilation = int_tuple(op, "dilation", (1,) * nsp if dilation is None else dilation, nsp, minimum=1)
    padding = pairs(op, "padding", ((0, 0),) * nsp if padding is None else padding, nsp)
    return Window(kernel, stride, dilation, padding)


def output_size(op: str, in_size: Size, win: Window, a: int, ceil_mode: bool = False, what: str = "") -> Size:
    """PyTorch's rule: floor((in + pads - effective kernel) / stride) + 1 (ceil with ceil_mode, where
    the last window must start inside the input or its begin padding)."""
    s = win.stride[a]
    pb, pe = win.padding[a]
    span = normalize(in_size + pb + pe - win.effective(a))
    if isinstance(span, int) and span < 0:
        raise fail(op, f"{what}spatial axis {a} of size {format_size(in_size)} (padded by {pb}, {pe}) is smaller "
                       f"than the kernel's extent {win.effective(a)}")
    if not ceil_mode:
        return normalize(floordiv(span, s) + 1)
    if s == 1:
        return normalize(span + 1)
    if not isinstance(span, int):
        raise fail(op, f"ceil_mode with a symbolic spatial size ({format_size(in_size)}) needs stride 1, got {s}")
    out = ceildiv(span, s) + 1
    if (out - 1) * s >= in_size + pb:
        out -= 1
    return out


def spatial_flow(in_axis: int, in_size: Size, out_size: Size, win: Window, a: int, transposed: bool = False,
                 output_padding: int = 0, input_index: int = 0) -> AxisFlow | None:
    """The carry of spatial axis ``a`` when its windows tile the input, else None."""
    pb, pe = win.padding[a]
    if not (isinstance(pb, int) and pb == 0 and isinstance(pe, int) and pe == 0):
        return None
    s = win.stride[a]
    if transposed:  # each input row scatters into its own block of `stride` output rows
        if win.effective(a) + output_padding != s or not sizes_equal(out_size, normalize(in_size * s)):
            return None
        return carry_from(AxisSource(input_index, in_axis, Fraction(1, s)))
    if win.effective(a) > s or not sizes_equal(in_size, normalize(out_size * s)):
        return None
    return carry_from(AxisSource(input_index, in_axis, Fraction(s)))


def window_flow(in_axis: int, win: Window, a: int, pad_attr: str, fill: float = 0.0,
                input_index: int = 0) -> AxisFlow | None:
    """The ``window`` flow of spatial axis ``a`` (chunkc.ir.dims.AxisWindow): output rows read
    overlapping input rows, a halo; None when its padding is not a pair of ints."""
    pb, pe = win.padding[a]
    if not (isinstance(pb, int) and isinstance(pe, int)):
        return None
    return windowed(input_index, in_axis, AxisWindow(win.stride[a], win.effective(a), pb, pe, pad_attr, a, fill))


# -- index ranges for the NumPy references ---------------------------------------------------


def gather_ranges(in_sizes: Sequence[int], out_sizes: Sequence[int], offset: Sequence[int], win: Window):
    """For one kernel offset: per axis (output slice, input slice) of the output positions whose
    input position ``o*stride + offset*dilation - pad_begin`` lies inside the input; None if empty."""
    outs, ins = [], []
    for a, (n_in, n_out) in enumerate(zip(in_sizes, out_sizes)):
        s = win.stride[a]
        shift = offset[a] * win.dilation[a] - int(win.padding[a][0])
        lo = max(0, _ceil_div(-shift, s))
        hi = min(n_out, (n_in - 1 - shift) // s + 1)
        if hi <= lo:
            return None
        outs.append(slice(lo, hi))
        ins.append(slice(lo * s + shift, (hi - 1) * s + shift + 1, s))
    return tuple(outs), tuple(ins)


def scatter_ranges(in_sizes: Sequence[int], out_sizes: Sequence[int], offset: Sequence[int], win: Window):
    """Transposed: per axis (input slice, output slice) for the input positions ``i`` whose output
    position ``i*stride + offset*dilation - pad_begin`` lies inside the output; None if empty
    (:func:`gather_ranges` with the two sides swapped)."""
    return gather_ranges(out_sizes, in_sizes, offset, win)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def pad_spec(ctx: LoweringContext, pairs) -> str:
    """``F.pad``'s flat list (last axis first) for (begin, end) pairs of the trailing axes."""
    flat = []
    for b, e in reversed(pairs):
        flat += [b, e]
    return ctx.lit(tuple(flat))
