"""Written-out attention as ``scaled_dot_product_attention``: a canonicalizing rewrite by pattern.

Models that write attention out (transformers' ``eager`` implementation) compute the scores,
their softmax over the keys and its product with the values as separate ops, so there is no
node that accumulates over the keys and nested loops (chunkc.passes.nest) cannot split them.
This pass matches that subgraph by its structure, as Inductor's attention fusion does, and
replaces it with one SDPA node, which ``split_statistics(.., "split_accumulating")`` can split
over its keys.  autochunk runs it only in its nested fallback (``AutochunkOptions.nested``).

The pattern, the one place it is described (each intermediate read only by the next step)::

    scores = matmul(q, kt)          kt: k with its last two axes swapped (k: a permute of kt)
    scaled = mul(scores, c) | mul(c, scores) | div(scores, c) | scores    c a scalar constant
    masked = add(scaled, m) | add(m, scaled) | where(b, scaled, n) | scaled
    probs  = softmax(masked, axis=-1)
    out    = matmul(probs, v)
    ->  out = scaled_dot_product_attention(q, k, v[, mask], scale=c or 1/c or 1.0[, is_causal])

Masks, and what a row that attends no key gives (eager's result is kept in every case):

* ``where(b, scaled, n)`` with ``n`` a scalar constant at most :data:`VERY_NEGATIVE` (or
  -inf) and ``b`` proven ``key <= query`` (chunkc.ir.ops.attention.proves_causal):
  ``is_causal=True``; every query attends its own key, so no row is fully masked.
* ``add(scaled, where(b, 0, n))`` with the same conditions (transformers' float causal mask):
  ``is_causal=True``.  ``scaled + n`` rounds to ``n`` where eager masks, so its softmax weight
  is 0 in both.
* any other ``where(b, scaled, n)`` with a finite ``n``: the float mask ``where(b, 0, n)`` (a
  new node).  A row masked at every key holds ``n`` (eager) or ``s + n``, which rounds to ``n``
  (|s| is far below n's rounding step), at every key: a uniform softmax in both; SDPA's bool
  mask would give zeros there instead, so it is not used.  ``n = -inf`` is left as written
  (eager gives NaN on such a row, SDPA zeros).
* ``add(scaled, m)`` with ``m`` a ``where`` of two finite scalar constants: ``m`` as SDPA's
  float mask (the same sum, so the same softmax, fully masked rows included).  A float mask of
  unknown values (a graph input) is left as written: where it is -inf at every key of a row,
  eager gives NaN and SDPA zeros.

    g, names = rewrite_written_attention(g)     # (g itself, []) when nothing matches
                                                # or the pipeline pass "written_attention"

Why the steps are matched by op name, not by the ops' records: what makes the subgraph
attention is what its float ops compute, and no record states that.  Element formulas
(chunkc.ir.elements) are exact only for integers and bools (float arithmetic rounds), so
``mul``, ``div``, ``add``, ``softmax`` and ``matmul`` of floats have none; a dims record says
how axes flow, not what is computed along them (``softmax``'s is ``log_softmax``'s and any
normalization's along the axis, ``matmul``'s a contraction's of any kind).  A rule keyed on
records alone would match subgraphs that are not attention, so the op names are the
statement of meaning here.  What records do state is used: the causal mask is proven from
its element formula (``proves_causal``, integers and bools), and every shape question goes
through the values' types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ChunkcError
from ..ir.elements import ElementAnalysis
from ..ir.graph import Graph, Node, Value
from ..ir.ops.attention import proves_causal
from ..ir.sizes import sizes_equal
from .manager import Pass, PassContext, register_pass

# a masking constant at most this is "very negative": finfo(float16).min is -65504, and scores
# that large never occur in attention (their exp underflows long before)
VERY_NEGATIVE = -1e4


@dataclass(frozen=True)
class AttentionMatch:
    """One match: the nodes from the scores' product to the output's, and the SDPA that replaces them."""

    out: Node  # the product of the probabilities and v (its name is kept)
    q: Value
    k_transposed: Value  # k with its last two axes swapped
    v: Value
    scale: float
    mask: Value | None  # SDPA's float mask, as it is in the graph
    mask_where: tuple[Value, float] | None  # build the float mask where(bool, 0, n) from these
    is_causal: bool


def _single_user(v: Value) -> Node | None:
    users = v.users
    return users[0] if len(users) == 1 and v not in v.graph.outputs else None


def _scalar(v: Value) -> float | None:
    """The number a 0-d (or one-element) constant or ``full`` holds; None for anything else."""
    if v.is_constant and v.data is not None and np.size(v.data) == 1:
        return float(np.asarray(v.data).reshape(()))
    p = v.producer
    if p is not None and p.op.name == "full" and isinstance(p.attrs.get("value"), (int, float)):
        return float(p.attrs["value"])
    return None


def _very_negative(n: float | None) -> bool:
    return n is not None and n <= VERY_NEGATIVE


def _causal(b: Value, scores: Value, analysis: ElementAnalysis) -> bool:
    """``b`` (bool) is ``key <= query`` over the scores' last two axes (queries x keys)."""
    return proves_causal(b, scores.shape[-2], scores.shape[-1], analysis)


def _other(node: Node, v: Value) -> Value:
    return node.inputs[1] if node.inputs[0] is v else node.inputs[0]


def match(out: Node, analysis: ElementAnalysis) -> AttentionMatch | None:
    """The pattern (module docstring) ending at ``out``, or None."""
    if out.op.name != "matmul" or len(out.inputs) != 2:
        return None
    probs, v = out.inputs
    sm = probs.producer
    if sm is None or sm.op.name != "softmax" or _single_user(probs) is not out or probs.rank < 2:
        return None
    if sm.attrs["axis"] not in (-1, probs.rank - 1):
        return None
    masked = sm.inputs[0]
    if _single_user(masked) is not sm or masked.producer is None:
        return None
    step = masked.producer
    mask = mask_where = None
    is_causal = False
    scaled = masked
    if step.op.name == "where":
        b, s, n = step.inputs
        fill = _scalar(n)
        if not sizes_equal(s.shape, masked.shape) or fill is None:
            return None
        scaled = s
        if _very_negative(fill) and _causal(b, masked, analysis):
            is_causal = True
        elif math.isfinite(fill):
            mask_where = (b, fill)
        else:
            return None
    elif step.op.name == "add":
        # the mask is the addend a where makes (of the scores' shape or broadcast to it)
        m = next((x for x in step.inputs if x.producer is not None and x.producer.op.name == "where"), None)
        if m is None or not sizes_equal(_other(step, m).shape, masked.shape):
            return None
        scaled, w = _other(step, m), m.producer
        b, x, n = w.inputs
        at_true, fill = _scalar(x), _scalar(n)
        if at_true is None or fill is None:
            return None
        if at_true == 0 and _very_negative(fill) and _causal(b, masked, analysis):
            is_causal = True
        elif math.isfinite(at_true) and math.isfinite(fill) and m.dtype.is_floating:
            mask = m
        else:
            return None
    if _single_user(scaled) is not (step if scaled is not masked else sm):
        return None
    scale = 1.0
    scores = scaled
    p = scaled.producer
    if p is not None and p.op.name in ("mul", "div"):
        c = _scalar(p.inputs[1]) if p.op.name == "div" else next(
            (_scalar(x) for x in p.inputs if _scalar(x) is not None), None)
        if c is None or c == 0:
            return None
        scores = p.inputs[0] if p.op.name == "div" else next(x for x in p.inputs if _scalar(x) is None)
        if _single_user(scores) is not p:
            return None
        scale = 1.0 / c if p.op.name == "div" else c
    mm = scores.producer
    if mm is None or mm.op.name != "matmul" or len(mm.inputs) != 2:
        return None
    q, kt = mm.inputs
    if q.rank < 2 or kt.rank < 2:
        return None
    return AttentionMatch(out, q, kt, v, scale, mask, mask_where, is_causal)


def rewrite_written_attention(graph: Graph) -> tuple[Graph, list[str]]:
    """A copy of ``graph`` with each written-out attention (module docstring) replaced by
    ``scaled_dot_product_attention`` named as its output's product, and those names; ``graph``
    itself and [] when none matches (or none of the matches builds a valid SDPA)."""
    analysis = ElementAnalysis(graph)
    found = [m for m in (match(n, analysis) for n in graph.nodes) if m is not None]
    if not found:
        return graph, []
    result = graph.copy()
    done = []
    for m in found:
        out = result.node(m.out.name)
        kt = result.value(m.k_transposed.name)
        try:
            with result.transaction():
                k = _untransposed(result, kt, out)
                inputs = [result.value(m.q.name), k, result.value(m.v.name)]
                if m.mask is not None:
                    inputs.append(result.value(m.mask.name))
                elif m.mask_where is not None:
                    b, fill = m.mask_where
                    dt = out.outputs[0].dtype
                    inputs.append(result.add_node("where", [result.value(b.name), result.scalar(0.0, dt),
                                                            result.scalar(fill, dt)], {}, before=out,
                                                  name=f"{m.out.name}_mask", source=out.source).outputs[0])
                attrs = {"scale": m.scale, "is_causal": m.is_causal}
                new = result.add_node("scaled_dot_product_attention", inputs, attrs, before=out,
                                      name=f"{m.out.name}_sdpa", source=out.source)
                if new.outputs[0].type != out.outputs[0].type:
                    raise ChunkcError(f"{m.out.name}: SDPA gives {new.outputs[0].type}, not {out.outputs[0].type}")
                result.replace_all_uses(out.outputs[0], new.outputs[0])
        except ChunkcError:  # shapes SDPA does not take (batches it does not broadcast): left as written
            continue
        done.append(m.out.name)
    if not done:
        return graph, []
    result.dce()
    for m in found:  # the SDPA takes the names of the product it replaced (now gone)
        if m.out.name in done:
            node = result.node(f"{m.out.name}_sdpa")
            result.rename(node.outputs[0], m.out.outputs[0].name)
            result.rename(node, m.out.name)
    return result, done


def _untransposed(g: Graph, kt: Value, before: Node) -> Value:
    """k, whose last two axes ``kt`` swaps: when ``kt`` is a permute of some value, one permute
    of that value (none when it only swapped them: eager's ``k.transpose(-1, -2)``), else a
    permute of ``kt``."""
    p = kt.producer
    src, dims = kt, list(range(kt.rank))
    if p is not None and p.op.name == "permute":
        src, dims = p.inputs[0], list(p.attrs["dims"])
    dims[-2], dims[-1] = dims[-1], dims[-2]
    if dims == list(range(len(dims))):
        return src
    return g.add_node("permute", [src], {"dims": tuple(dims)}, before=before, source=before.source
                      if p is None else p.source).outputs[0]


@register_pass
@dataclass(frozen=True)
class RewriteWrittenAttention(Pass):
    """Written-out attention as ``scaled_dot_product_attention``; see the module docstring."""

    name = "written_attention"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return rewrite_written_attention(graph)[0]
