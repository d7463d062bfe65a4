"""Contractions: matmul (NumPy semantics, batched and broadcast), bmm, linear,
addmm and einsum.  Rows carry the left operand, columns carry the right one,
batch axes carry both; the contracted axis is reduced.

The contracted axis also *accumulates* (records' ``accumulates``, chunkc.ir.dims):
``A @ B = sum over chunks c of A[..., c] @ B[c, ...]``, so a chunk loop may slice both
operands along it (the other operand is the record's *partner*) and keep the output
whole as an accumulator.  Not with a bias (linear's, addmm's): it would be added once
per chunk.
"""

from __future__ import annotations

import re

from ..dims import Accumulation, AxisFlow, AxisSource, DimRecord, NEW
from ..kernel_workspace import STRICT_CASTS, TorchWorkspace, strict_casts
from ..layout import contiguous_strides
from ..lowering import LoweringContext, LoweringFn, all_operands, keywords
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, normalize, sizes_equal
from ..types import TensorType
from ._contraction_copies import einsum_peak, matmul_copies, matmul_layout_copies
from ._common import array_result_dtype, broadcast_dims, broadcast_shapes, fail, require_rank, require_same, result_dtype, shape_str


def _matmul_parts(op: str, a: TensorType, b: TensorType):
    if a.rank == 0 or b.rank == 0:
        raise fail(op, f"operands must have rank >= 1, got {a} and {b}")
    a_shape = ((1,) + a.shape) if a.rank == 1 else a.shape
    b_shape = (b.shape + (1,)) if b.rank == 1 else b.shape
    if not sizes_equal(a_shape[-1], b_shape[-2]):
        raise fail(op, f"contracted sizes differ: input 0 {shape_str(a.shape)} and input 1 {shape_str(b.shape)}")
    batch = broadcast_shapes(op, [TensorType(a.dtype, a_shape[:-2]), TensorType(b.dtype, b_shape[:-2])])
    out = batch + ((a_shape[-2],) if a.rank > 1 else ()) + ((b_shape[-1],) if b.rank > 1 else ())
    return batch, out, a_shape[-1]


def _matmul_infer(ins, attrs):
    a, b = ins
    _, out, _ = _matmul_parts("matmul", a, b)
    return (TensorType(result_dtype(ins), out),)


def _matmul_dims(ins, attrs, outs) -> DimRecord:
    a, b = ins
    out = outs[0]
    nbatch = out.rank - (a.rank > 1) - (b.rank > 1)
    batch_types = [TensorType(a.dtype, a.shape[:-2]), TensorType(b.dtype, b.shape[:-2])]
    flows = list(broadcast_dims(batch_types, TensorType(out.dtype, out.shape[:nbatch])))
    if a.rank > 1:
        flows.append(AxisFlow("carry", (AxisSource(0, a.rank - 2),)))
    if b.rank > 1:
        flows.append(AxisFlow("carry", (AxisSource(1, b.rank - 1),)))
    return (tuple(flows),)


def _contracted(input: int, axis: int, axes: tuple[int, ...]) -> Accumulation | None:
    """A two-operand contraction over ``axes`` (one axis per operand): input ``input``'s
    ``axis`` accumulates, sliced together with the other operand's contracted axis."""
    if axis != axes[input]:
        return None
    return Accumulation("add", partners=((1 - input, axes[1 - input]),))


def _matmul_accumulates(ins, attrs, input: int, axis: int) -> Accumulation | None:
    a, b = ins
    return _contracted(input, axis, (a.rank - 1, 0 if b.rank == 1 else b.rank - 2))


def _matmul_flops(ins, attrs, outs) -> Size:
    _, _, k = _matmul_parts("matmul", ins[0], ins[1])
    return 2 * outs[0].numel() * k


def contraction(fn: str) -> LoweringFn:
    """``fn(*inputs)`` with every operand in the result's dtype (PyTorch's contractions want one dtype)."""
    return lambda ctx: f"{fn}({', '.join(all_operands(ctx, strict=True))})"


def _matmul_layout_copies(ins, attrs, outs, strides) -> Size:
    """The copies of operands that do not flatten in their layout; an operand the lowering
    casts is a fresh, contiguous copy (counted by ``strict_casts``)."""
    a, b = ins[0], ins[1]
    out = outs[0].dtype
    a_strides = strides[0] if a.dtype == out else contiguous_strides(a.shape)
    b_strides = strides[1] if b.dtype == out else contiguous_strides(b.shape)
    return matmul_layout_copies(a, b, a_strides, b_strides, outs[0].dtype.itemsize)


register(OpDef(name="matmul", infer=_matmul_infer, dims=_matmul_dims, flops=_matmul_flops,
               reference=lambda xp, a, b: xp.matmul(a, b), num_inputs=(2, 2), torch=contraction("torch.matmul"), saves=("cross",),
               accumulates=_matmul_accumulates,
               torch_workspace=TorchWorkspace(
                   lowering=strict_casts,
                   aten=lambda ins, a, outs: matmul_copies(ins[0], ins[1], outs[0].dtype.itemsize),
                   aten_layout=_matmul_layout_copies),
               doc="matmul(a, b): NumPy matmul semantics, batch axes broadcast. "
                   "Carries: batch axes (from the inputs not broadcast), rows from a, columns from b."))


def _bmm_infer(ins, attrs):
    require_rank("bmm", ins[0], 3, "input 0")
    require_rank("bmm", ins[1], 3, "input 1")
    require_same("bmm", ins[0].shape[0], ins[1].shape[0], "batch sizes")
    return _matmul_infer(ins, attrs)


register(OpDef(name="bmm", infer=_bmm_infer, dims=_matmul_dims, flops=_matmul_flops,
               reference=lambda xp, a, b: xp.matmul(a, b), num_inputs=(2, 2), torch=contraction("torch.bmm"), saves=("cross",),
               accumulates=_matmul_accumulates,
               torch_workspace=STRICT_CASTS,
               doc="bmm(a[B,M,K], b[B,K,N]) -> [B,M,N]. Carries: B from a and b, M from a, N from b."))


def _linear_infer(ins, attrs):
    x, w = ins[0], ins[1]
    require_rank("linear", w, 2, "weight (input 1)")
    if x.rank < 1:
        raise fail("linear", f"input must have rank >= 1, got {x}")
    require_same("linear", x.shape[-1], w.shape[1], f"input features {x} vs weight {w}")
    if len(ins) == 3:
        require_rank("linear", ins[2], 1, "bias (input 2)")
        require_same("linear", ins[2].shape[0], w.shape[0], f"bias {ins[2]} vs weight {w}")
    return (TensorType(result_dtype(ins), x.shape[:-1] + (w.shape[0],)),)


def _linear_dims(ins, attrs, outs) -> DimRecord:
    x = ins[0]
    flows = [AxisFlow("carry", (AxisSource(0, k),)) for k in range(x.rank - 1)]
    last = [AxisSource(1, 0)] + ([AxisSource(2, 0)] if len(ins) == 3 else [])
    flows.append(AxisFlow("carry", tuple(last)))
    return (tuple(flows),)


def _linear_accumulates(ins, attrs, input: int, axis: int) -> Accumulation | None:
    if len(ins) == 3:
        return None  # the bias would be added once per chunk
    return _contracted(input, axis, (ins[0].rank - 1, 1))


def _linear_ref(xp, x, w, b=None):
    y = xp.matmul(x, w.T)
    if b is not None:
        y += b  # in place: the output is the only full-size array
    return y


register(OpDef(name="linear", infer=_linear_infer, dims=_linear_dims, reference=_linear_ref, num_inputs=(2, 3),
               accumulates=_linear_accumulates,
               torch=contraction("F.linear"), saves=("cross",), torch_workspace=STRICT_CASTS,
               flops=lambda ins, a, outs: 2 * outs[0].numel() * ins[0].shape[-1],
               doc="linear(x[..., K], w[N, K], b[N]?) -> x @ w.T + b (PyTorch's layout). "
                   "Carries: the leading axes of x; N from w (and b)."))


def _addmm_infer(ins, attrs):
    bias, a, b = ins
    require_rank("addmm", a, 2, "input 1")
    require_rank("addmm", b, 2, "input 2")
    _, out, _ = _matmul_parts("addmm", a, b)
    shape = broadcast_shapes("addmm", [bias, TensorType(a.dtype, out)])
    if len(shape) != 2 or not all(sizes_equal(x, y) for x, y in zip(shape, out)):
        raise fail("addmm", f"bias {bias} does not broadcast to {shape_str(out)}")
    return (TensorType(result_dtype(ins), out),)


def _addmm_dims(ins, attrs, outs) -> DimRecord:
    bias, a, b = ins
    bias_flows = broadcast_dims([bias], outs[0])
    rows = ((AxisSource(1, 0),) + (bias_flows[0].sources if bias_flows[0].kind == "carry" else ()))
    cols = ((AxisSource(2, 1),) + tuple(AxisSource(0, s.axis) for s in bias_flows[1].sources))
    return ((AxisFlow("carry", rows), AxisFlow("carry", cols)),)


def _addmm_ref(xp, bias, a, b, beta=1.0, alpha=1.0):
    y = xp.matmul(a, b)
    if alpha != 1:
        y *= alpha
    if beta == 1:
        y += bias
    elif beta != 0:  # beta == 0 ignores bias (NaN included), as PyTorch does
        y += xp.multiply(bias, beta)  # a bias-sized temporary (declared as workspace)
    return y


def _addmm_workspace(ins, attrs, outs) -> Size:
    return ins[0].numel() if attrs["beta"] not in (0, 1) else 0


def _addmm_torch(ctx: LoweringContext) -> str:
    beta = ctx.attr("beta") if ctx.attrs["beta"] != 1 else None
    alpha = ctx.attr("alpha") if ctx.attrs["alpha"] != 1 else None
    return f"torch.addmm({', '.join(all_operands(ctx, strict=True))}{keywords(beta=beta, alpha=alpha)})"


register(OpDef(name="addmm", infer=_addmm_infer, dims=_addmm_dims, reference=_addmm_ref, num_inputs=(3, 3),
               attrs={"beta": 1.0, "alpha": 1.0}, workspace=_addmm_workspace, torch=_addmm_torch, saves=(1, 2),
               torch_workspace=STRICT_CASTS,
               flops=lambda ins, a, outs: 2 * outs[0].numel() * ins[1].shape[1],
               doc="addmm(bias, a[M,K], b[K,N]) -> beta*bias + alpha*(a @ b). "
                   "Carries: M from a, N from b (and bias where it is not broadcast)."))


# -- einsum -------------------------------------------------------------------

_EQ = re.compile(r"^[a-zA-Z,]*->[a-zA-Z]*$")


def _parse_einsum(eq: str, ins):
    eq = eq.replace(" ", "")
    if not _EQ.match(eq):
        raise fail("einsum", f"equation {eq!r} must look like 'ij,jk->ik' (explicit output, no ellipsis)")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != len(ins):
        raise fail("einsum", f"equation {eq!r} names {len(terms)} operands, got {len(ins)} inputs")
    sizes: dict[str, Size] = {}
    for i, (term, t) in enumerate(zip(terms, ins)):
        if len(term) != t.rank:
            raise fail("einsum", f"operand {i} {t} has rank {t.rank} but term {term!r} has {len(term)} letters")
        for letter, s in zip(term, t.shape):
            if letter in sizes and not sizes_equal(sizes[letter], s):
                if isinstance(s, int) and s == 1:
                    continue
                if isinstance(sizes[letter], int) and sizes[letter] == 1:
                    sizes[letter] = s
                    continue
                raise fail("einsum", f"letter {letter!r} has sizes {sizes[letter]} and {s}")
            sizes.setdefault(letter, s)
    for letter in out:
        if letter not in sizes:
            raise fail("einsum", f"output letter {letter!r} appears in no operand")
    if len(set(out)) != len(out):
        raise fail("einsum", f"output {out!r} repeats a letter")
    return terms, out, sizes


def _einsum_infer(ins, attrs):
    terms, out, sizes = _parse_einsum(attrs["equation"], ins)
    return (TensorType(result_dtype(ins), tuple(sizes[c] for c in out)),)


def _einsum_dims(ins, attrs, outs) -> DimRecord:
    terms, out, sizes = _parse_einsum(attrs["equation"], ins)
    flows = []
    for letter, size in zip(out, outs[0].shape):
        sources = []
        mixed = False
        for i, (term, t) in enumerate(zip(terms, ins)):
            if term.count(letter) > 1:
                mixed = True
            if letter in term:
                axis = term.index(letter)
                s = t.shape[axis]
                if isinstance(s, int) and s == 1 and not (isinstance(size, int) and size == 1):
                    continue
                sources.append(AxisSource(i, axis))
        flows.append(NEW if (mixed or not sources) else AxisFlow("carry", tuple(sources)))
    return (tuple(flows),)


def _einsum_accumulates(ins, attrs, input: int, axis: int) -> Accumulation | None:
    """A letter summed over (in no output, once in each operand that holds it) accumulates;
    every other operand holding it is a partner, sliced along it too."""
    terms, out, _ = _parse_einsum(attrs["equation"], ins)
    letter = terms[input][axis]
    if letter in out or terms[input].count(letter) > 1:
        return None
    partners = []
    for i, term in enumerate(terms):
        if i == input or letter not in term:
            continue
        k = term.index(letter)
        if term.count(letter) > 1 or not sizes_equal(ins[i].shape[k], ins[input].shape[axis]):
            return None  # a diagonal, or an operand broadcast along the letter
        partners.append((i, k))
    return Accumulation("add", partners=tuple(partners))


def _einsum_ref(xp, *xs, equation):
    dt = array_result_dtype(*xs)
    if len(xs) <= 2:
        # one pass, no intermediates: the output is the only allocation (in C order: NumPy's
        # default follows the operands' layout, and a copy to C order would be a second output)
        # (CuPy's einsum takes neither order nor casting; its output is C-ordered)
        exact = {"order": "C", "casting": "unsafe"} if xp.__name__ == "numpy" else {}
        out = xp.einsum(equation, *xs, dtype=dt, **exact)
    else:
        out = xp.einsum(equation, *xs, optimize=True)  # pairwise contractions (intermediates)
    if any(xp.may_share_memory(out, x) for x in xs):  # a transpose or a diagonal is a view: copy
        return xp.array(out, dtype=dt, order="C", copy=True)
    return xp.asarray(out, dtype=dt, order="C")  # ascontiguousarray would make a 0-d result 1-d


def _einsum_workspace(ins, attrs, outs) -> Size:
    # three or more operands contract pairwise; bound the intermediates by the largest operand
    if len(ins) <= 2:
        return 0
    biggest: Size = 0
    for t in ins:
        biggest = t.numel() if biggest == 0 else sympy_max(biggest, t.numel())
    return biggest


def sympy_max(a: Size, b: Size) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    import sympy
    from ..sizes import normalize
    return normalize(sympy.Max(a, b))


def _einsum_flops(ins, attrs, outs) -> Size:
    terms, out, sizes = _parse_einsum(attrs["equation"], ins)
    total: Size = 2 if len(ins) > 1 else 1
    for s in sizes.values():
        total = total * s
    return total


def _einsum_torch_workspace(device: str):
    def workspace(ins, attrs, outs) -> Size:
        terms, out, _ = _parse_einsum(attrs["equation"], ins)
        item = outs[0].dtype.itemsize
        peak = einsum_peak(terms, out, [t.with_dtype(outs[0].dtype) for t in ins], item, device)
        return normalize(peak - outs[0].numel() * item) if peak else 0
    return workspace


def _einsum_cpu_layout(ins, attrs, outs, strides) -> Size:
    """What the operands' layout adds to (or spares from) the count for contiguous operands:
    permuted views (attention's heads) whose groups do not merge are copied; an operand the
    lowering casts is a fresh, contiguous copy."""
    if not all(isinstance(s, int) for t in ins for s in t.shape) or len(strides) < len(ins):
        return 0
    terms, out, _ = _parse_einsum(attrs["equation"], ins)
    item = outs[0].dtype.itemsize
    dense = [strides[i] if t.dtype == outs[0].dtype else contiguous_strides(t.shape) for i, t in enumerate(ins)]
    types = [t.with_dtype(outs[0].dtype) for t in ins]
    return normalize(einsum_peak(terms, out, types, item, "cpu", dense) - einsum_peak(terms, out, types, item, "cpu"))


def _einsum_torch(ctx: LoweringContext) -> str:
    """``torch.einsum``; three or more operands contract left to right, one pair at a time,
    each letter summed with the last operand that holds it.  (A single call's order would
    depend on whether opt_einsum is installed, and so would its temporaries.)"""
    operands = all_operands(ctx, strict=True)
    if len(operands) <= 2:
        return f"torch.einsum({ctx.attr('equation')}, {', '.join(operands)})"
    lhs, out = ctx.attrs["equation"].replace(" ", "").split("->")
    terms = lhs.split(",")
    if not all(t.isalpha() for t in terms) or not (out.isalpha() or out == ""):
        raise fail("einsum", f"equation {ctx.attrs['equation']!r} must name axes by letters")
    left, expr = terms[0], operands[0]
    for i in range(1, len(terms)):
        needed = set(out).union(*terms[i + 1:])
        result = out if i == len(terms) - 1 else "".join(dict.fromkeys(c for c in left + terms[i] if c in needed))
        expr = f"torch.einsum({left + ',' + terms[i] + '->' + result!r}, {expr}, {operands[i]})"
        left = result
    return expr


register(OpDef(name="einsum", infer=_einsum_infer, dims=_einsum_dims, flops=_einsum_flops,
               reference=_einsum_ref, workspace=_einsum_workspace,
               torch_workspace=TorchWorkspace(lowering=strict_casts, cpu=_einsum_torch_workspace("cpu"),
                                              cuda=_einsum_torch_workspace("cuda"), cpu_layout=_einsum_cpu_layout),
               torch=_einsum_torch,
               num_inputs=(1, None), attrs={"equation": REQUIRED}, saves=("cross",), accumulates=_einsum_accumulates,
               doc="einsum(*xs, equation='bqd,bkd->bqk'): explicit output, no ellipsis. "
                   "Carries: each output letter from the operands that hold it (not broadcast, not repeated)."))


def explicit_einsum_equation(equation: str, ranks: list[int]) -> str:
    """``'...ij,...jk'`` -> ``'abij,abjk->abik'``: the ellipsis expanded and the output
    made explicit (implicit output: the ellipsis axes, then letters seen once, sorted),
    the form the ``einsum`` op takes.  Shared by the PyTorch and ONNX importers."""
    import string

    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise fail("einsum", f"equation {equation!r} names {len(terms)} operands, got {len(ranks)} inputs")
    used = set(c for c in eq if c.isalpha())
    free = [c for c in string.ascii_letters if c not in used]
    ell_rank = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    if ell_rank > len(free):
        raise fail("einsum", f"equation {equation!r} has too many axes under its ellipsis")
    ell = "".join(free[:ell_rank])
    new_terms = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            k = rank - len(term.replace("...", ""))
            term = term.replace("...", ell[ell_rank - k:] if k else "")
        new_terms.append(term)
    if not all(c.isalpha() for t in new_terms for c in t):
        raise fail("einsum", f"equation {equation!r} is not a valid einsum equation")
    if arrow:
        out = out.replace("...", ell)
    else:
        counts: dict[str, int] = {}
        for t in new_terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ",".join(new_terms) + "->" + out
