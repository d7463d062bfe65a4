"""Halo arithmetic: the rows a chunk loop computes when slices overlap.

A ``window`` axis (chunkc.ir.dims.AxisWindow: convolution, pooling) needs, for
output rows ``[a, b)``, input rows ``[stride*a - pad_lo, stride*(b-1) - pad_lo +
extent)``: more than the input's share of the chunk.  So a sliced value in a
region has, besides its axis and unit, a *halo* ``(lo, hi)``: in the iteration
over units ``[s, e)`` the loop computes (or slices) its rows

    ``[max(0, unit*s - lo), min(size, unit*e + hi))``  (:func:`rows`)

and a region output is written only in its core rows ``[unit*s, unit*e)``.  The
search (chunkc.passes.search) derives halos backwards from the region's end
(:func:`input_halo`); the plan's interpreter, the code generators and the
estimator give each loop node the rows its output needs of each input
(:func:`needed_rows`), padded at the border for a window (:func:`take_rows`),
and crop what a node computed beyond its own rows (:func:`computed_rows`).

Everything here is plain integer arithmetic on the record's numbers.  The code
generators write the same arithmetic into the generated loop
(chunkc.backends.halo_loop), whose ``take_rows`` is the runtime's
(``chunkc.backends.torch_runtime.take_rows`` for tensors, this one for arrays).
"""

from __future__ import annotations

from fractions import Fraction

import sympy

from ..ir.dims import LOOP_START, LOOP_STOP, AxisFlow, AxisSource

NO_HALO = (0, 0)


def input_halo(source: AxisSource, lo: int, hi: int) -> tuple[int, int] | None:
    """The halo ``source``'s input needs so that the output can have halo ``(lo, hi)``;
    None when the flow cannot carry a halo (a ratio that is neither n nor 1/n)."""
    w = source.window
    if w is not None:
        return (w.stride * lo + w.pad_lo, max(0, w.stride * hi + w.extent - w.stride - w.pad_lo))
    if lo == 0 and hi == 0:
        return NO_HALO
    r = Fraction(source.ratio)
    if r.denominator == 1:
        return (lo * r.numerator, hi * r.numerator)
    if r.numerator == 1:
        q = r.denominator
        return (-(-lo // q), -(-hi // q))
    return None


def union(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """One value read by two consumers: the rows either needs."""
    return (max(a[0], b[0]), max(a[1], b[1]))


def rows(start: int, stop: int, unit: int, lo: int, hi: int, size: int) -> tuple[int, int]:
    """The rows of a value with this unit and halo that the iteration over units
    ``[start, stop)`` holds (clipped to the value's ``size``)."""
    return max(0, unit * start - lo), min(size, unit * stop + hi)


def needed_rows(source: AxisSource, out_rows: tuple[int, int]) -> tuple[int, int]:
    """The input rows (not clipped: a window's may reach into the padding) from which the op
    computes output rows ``out_rows`` (or, for a ratio 1/n, the rows covering them)."""
    a, b = out_rows
    w = source.window
    if w is not None:
        return w.stride * a - w.pad_lo, w.stride * (b - 1) - w.pad_lo + w.extent
    r = Fraction(source.ratio)
    if r.denominator == 1:
        return a * r.numerator, b * r.numerator
    q = r.denominator
    return a // q, -(-b // q)


def computed_rows(source: AxisSource, in_rows: tuple[int, int], out_rows: tuple[int, int]) -> tuple[int, int]:
    """The output rows the op computes from input rows ``in_rows`` (from :func:`needed_rows`)."""
    if source.window is not None:
        return out_rows
    r = Fraction(source.ratio)
    return int(in_rows[0] / r), int(in_rows[1] / r)


def widening(flow: AxisFlow) -> int:
    """``q`` when the node reads its input along this axis through a ratio ``1/q`` (a nearest
    upsampling): it computes its output rows in whole groups of ``q``, one per input row, so
    a halo row of the output costs up to ``q`` rows (1: no widening)."""
    return max((Fraction(s.ratio).denominator for s in flow.sources if s.window is None), default=1)


def held_length(start: int, stop: int, unit: int, lo: int, hi: int, size: int, q: int = 1) -> int:
    """How many rows a value with this unit and halo holds in the iteration over units
    ``[start, stop)`` (:func:`rows`), widened to whole groups of ``q`` rows when its node
    computes it through a ratio ``1/q`` (:func:`widening`; the integer form of
    :func:`computed_length`)."""
    first, last = rows(start, stop, unit, lo, hi, size)
    if q == 1 or (not lo and not hi):
        return last - first
    return q * (-(-last // q) - first // q)


def inner_held_length(units: int, unit: int, lo: int, hi: int, q: int = 1) -> int:
    """The most rows a halo value holds in an iteration of ``units`` units away from the
    border (no row clipped): ``units*unit + lo + hi``, or with a widening ``q`` the most
    over the alignments of the iteration's start (:func:`held_length`)."""
    if q == 1 or (not lo and not hi):
        return units * unit + lo + hi
    big = 1 << 62  # no clipping at the far border
    return max(held_length(j * units, (j + 1) * units, unit, lo, hi, big, q) for j in range(lo + 1, lo + 1 + q))


# LOOP_START by name, but allowed to be 0 (the first iteration), so that max(0, start - lo)
# is not simplified away
_FIRST_START = sympy.Symbol(LOOP_START.name, integer=True, nonnegative=True)


def computed_length(flow: AxisFlow, chunk, size):
    """How many rows of its output along the chunk axis a loop node computes, as an expression
    of the loop's ``chunk_start``/``chunk_stop`` (for an attribute that states the output's
    shape, chunkc.passes.plan_index.loop_attrs): the rows the value holds (:func:`rows`, its
    halo included, clipped to ``size``), widened to whole input rows when the node reads its
    input through a ratio ``1/q`` (:func:`computed_rows`: a nearest upsampling computes ``q``
    output rows per input row)."""
    unit, lo, hi = chunk.unit, chunk.halo_lo, chunk.halo_hi
    if not lo and not hi:
        return unit * (LOOP_STOP - LOOP_START)
    first, stop = sympy.Max(0, unit * _FIRST_START - lo), sympy.Min(size, unit * LOOP_STOP + hi)
    q = widening(flow)
    if q == 1:
        return stop - first
    return q * (sympy.ceiling(stop / q) - sympy.floor(first / q))


def take_rows(xp, x, axis: int, have: tuple[int, int], need: tuple[int, int], size: int, fill: float = 0.0):
    """Rows ``need`` of a value whose rows ``have`` are in ``x`` (array module ``xp``): a view
    when ``need`` lies inside the value, else the rows outside ``[0, size)`` filled with
    ``fill`` (a window's padding at the border)."""
    lo, hi = max(need[0], 0), min(need[1], size)
    index = [slice(None)] * x.ndim
    index[axis] = slice(lo - have[0], hi - have[0])
    part = x[tuple(index)]
    before, after = lo - need[0], need[1] - hi
    if not before and not after:
        return part
    pieces = []
    for n in (before, after):
        shape = list(part.shape)
        shape[axis] = n
        pieces.append(xp.full(tuple(shape), fill, dtype=x.dtype))
    return xp.concatenate([pieces[0], part, pieces[1]], axis=axis)


__all__ = ["NO_HALO", "computed_length", "computed_rows", "input_halo", "needed_rows", "rows", "take_rows", "union"]
