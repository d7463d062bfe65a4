"""Graph editing: use lists, replace_all_uses, set_input, erase, insertion, dce, transactions.

Every edit must keep the graph verifiable (use lists and name table included),
keep values equal to the reference where the edit preserves meaning, and refuse
bad edits with a message naming the values or nodes at fault.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chunkc
from chunkc import ops as O
from chunkc.errors import IRError
from chunkc.ir import Graph

from strategies import random_graphs

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 4)).astype(np.float32)


def small():
    """x -> h = x @ w -> s = softmax(h) -> y = s + h (the output); a dead exp(x) at the end."""
    g = Graph("small")
    x = g.add_input("x", "f32", ("L", 4))
    w = g.add_constant("w", RNG.standard_normal((4, 4)).astype(np.float32))
    h = O.matmul(x, w, name="h")
    s = O.softmax(h, axis=-1, name="s")
    y = O.add(s, h, name="y")
    O.exp(x, name="dead")
    g.set_outputs(y)
    chunkc.verify(g)
    return g


def names(nodes) -> list[str]:
    return [n.name for n in nodes]


def snapshot(g: Graph):
    """Everything an edit may change: the text, the name table and every use list."""
    return (chunkc.print_graph(g), set(g._names), {v.name: names(v.users) for v in g.values()},
            [v.name for v in g.outputs], dict(g._scalars))


# -- use lists ---------------------------------------------------------------------------------


def test_use_lists_follow_the_schedule():
    g = small()
    x, h = g.value("x"), g.value("h")
    assert names(x.users) == ["h", "dead"]
    assert names(h.users) == ["s", "y"] and g.value("y").users == ()
    sq = O.mul(h, h, name="sq")  # one node reading a value twice is one user
    assert names(h.users) == ["s", "y", "sq"] and sq.users == ()
    assert g.users() == {v: list(v.users) for v in g.values()}


@settings(max_examples=25)
@given(random_graphs(max_nodes=12))
def test_use_lists_of_random_graphs_match_the_nodes(case):
    g = case.graph
    for v in g.values():
        readers = [n for n in g.nodes if v in n.inputs]
        assert list(v.users) == readers
    chunkc.verify(g.copy())


def test_copy_has_its_own_use_lists():
    g = small()
    c = g.copy()
    assert all(u.graph is c for v in c.values() for u in v.users)
    assert names(c.value("h").users) == ["s", "y"]
    c.erase(c.node("dead"))
    assert names(g.value("x").users) == ["h", "dead"] and names(c.value("x").users) == ["h"]
    chunkc.verify(c)
    chunkc.verify(g)


# -- replace_all_uses / set_input ---------------------------------------------------------------------


def test_replace_all_uses_rewrites_readers_and_outputs():
    g = small()
    (want,) = chunkc.interpret(g, X)
    h = g.value("h")
    with g.inserting(after=h.producer):
        h2 = O.add(h, 0.0, name="h2")  # the same values under another name; it reads h itself
    assert g.replace_all_uses(h, h2) == 2  # s and y; h2's own read of h stays
    assert names(h.users) == ["h2"] and names(h2.users) == ["s", "y"]
    y = g.value("y")
    y2 = O.mul(y, 1.0, name="y2")
    assert g.replace_all_uses(y, y2) == 1  # the graph output
    assert g.outputs == [y2] and names(y.users) == ["y2"]
    chunkc.verify(g)
    np.testing.assert_allclose(chunkc.interpret(g, X)[0], want, rtol=1e-6)


def test_replace_all_uses_can_skip_readers():
    g = small()
    h, s = g.value("h"), g.value("s")
    with g.inserting(after=s.producer):
        scaled = O.mul(h, 3.0, name="scaled")
    assert g.replace_all_uses(h, scaled, skip=[s.producer]) == 1  # only y
    assert names(h.users) == ["s", "scaled"] and names(scaled.users) == ["y"]
    chunkc.verify(g)
    (got,) = chunkc.interpret(g, X)
    hx = X @ g.value("w").data
    e = np.exp(hx - hx.max(-1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True) + 3 * hx, rtol=1e-5)


def test_replace_all_uses_counts_each_read_and_each_output():
    g = Graph("count")
    x = g.add_input("x", "f32", (3,))
    a = O.relu(x, name="a")
    O.mul(a, a, name="sq")
    g.set_outputs(a, a)
    b = O.abs(x, name="b")
    with pytest.raises(IRError, match=r"node\(s\) sq read %a but come before node b, which defines %b; define it "
                                      "earlier, or leave them out with skip="):
        g.replace_all_uses(a, b)  # b is defined after sq
    b2 = g.add_node("abs", [x], name="b2", before=a.producer).outputs[0]
    assert g.replace_all_uses(a, b2) == 4  # two reads by sq, two outputs
    assert g.outputs == [b2, b2] and a.users == ()
    chunkc.verify(g)


def test_replace_all_uses_refuses_another_type_naming_both_values():
    g = small()
    h = g.value("h")
    half = O.cast(h, dtype="f16", name="half")
    with pytest.raises(IRError, match=r"replace_all_uses\(%h, %half\): the types differ: %h is f32\[L, 4\], "
                                      r"%half is f16\[L, 4\]; cast or reshape the new value first"):
        g.replace_all_uses(h, half)
    other = Graph("other").add_input("z", "f32", ("L", 4))
    with pytest.raises(IRError, match="is not a value of this graph"):
        g.replace_all_uses(h, other)
    chunkc.verify(g)


def test_replace_all_uses_accepts_equal_symbolic_sizes_written_differently():
    g = Graph("sym")
    x = g.add_input("x", "f32", ("L", 4))
    flat = O.reshape(x, shape=("4*L",), name="flat")
    r = O.relu(flat, name="r")
    g.set_outputs(r)
    with g.inserting(before=r.producer):
        again = O.reshape(O.reshape(x, shape=(2, "2*L")), shape=("L*4",), name="again")
    assert g.replace_all_uses(flat, again) == 1
    g.dce()
    assert names(g.nodes) == ["reshape", "again", "r"]
    chunkc.verify(g)
    np.testing.assert_array_equal(chunkc.interpret(g, X)[0], np.maximum(X.reshape(-1), 0))


def test_set_input_checks_type_and_place():
    g = small()
    s, h, x = g.node("s"), g.value("h"), g.value("x")
    y = g.node("y")
    g.set_input(y, 1, g.value("s"))  # y = s + s
    assert names(h.users) == ["s"] and y.inputs == (g.value("s"), g.value("s"))
    assert g.value("s")._users[y] == 2
    with pytest.raises(IRError, match=r"node s \(softmax\) input 0: %y is defined by node y, which does not come "
                                      "before it"):
        g.set_input(s, 0, g.value("y"))
    with pytest.raises(IRError, match=r"node y \(add\) input 0: the types differ: %s is f32\[L, 4\], %c is f32\[4\]"):
        g.set_input(y, 0, g.add_constant("c", np.zeros(4, np.float32)))
    with pytest.raises(IRError, match="the node has 2 inputs"):
        g.set_input(y, 2, x)
    chunkc.verify(g)


# -- erase ----------------------------------------------------------------------------------------


def test_erase_refuses_nodes_whose_outputs_are_used():
    g = small()
    with pytest.raises(IRError, match=r"cannot erase node h \(matmul\): %h is still read by node\(s\) s, y; replace "
                                      r"those uses first \(Graph.replace_all_uses\)"):
        g.erase(g.node("h"))
    with pytest.raises(IRError, match=r"cannot erase node y \(add\): %y is a graph output"):
        g.erase(g.node("y"))
    with pytest.raises(IRError, match=r"cannot erase constant %w: %w is still read by node\(s\) h"):
        g.erase(g.value("w"))
    with pytest.raises(IRError, match="graph inputs are its signature"):
        g.erase(g.value("x"))
    chunkc.verify(g)


def test_erase_frees_names_and_uses():
    g = small()
    dead = g.node("dead")
    g.erase(dead)
    assert "dead" not in names(g.nodes) and not g.has_name("dead")
    assert names(g.value("x").users) == ["h"]
    with pytest.raises(IRError, match="cannot erase node dead .*not in the graph's schedule"):
        g.erase(dead)
    assert O.exp(g.value("x"), name="dead").name == "dead"  # the name is free again
    chunkc.verify(g)


def test_erase_a_multi_output_node_frees_every_output_name():
    g = Graph("multi")
    x = g.add_input("x", "f32", (4, 6))
    a, b = O.split(x, sizes=(2, 4), axis=1, name="sp")
    g.set_outputs(x)
    g.erase(a.producer)
    assert not any(g.has_name(n) for n in ("sp", "sp_0", "sp_1"))
    chunkc.verify(g)


def test_erased_value_cannot_feed_a_new_node():
    g = small()
    dead = g.value("dead")
    g.erase(dead.producer)
    with pytest.raises(IRError, match=r"input 0 %dead was produced by node dead, which is no longer in the graph"):
        O.relu(dead)


# -- insertion --------------------------------------------------------------------------------------


def test_add_node_before_and_after():
    g = small()
    h = g.value("h")
    g.add_node("neg", [h], name="after_h", after=h.producer)
    g.add_node("relu", [g.value("x")], name="first", before=g.nodes[0])
    assert names(g.nodes) == ["first", "h", "after_h", "s", "y", "dead"]
    assert names(h.users) == ["after_h", "s", "y"]
    with pytest.raises(IRError, match=r"op relu \(node relu\): cannot be placed before node h: its input 0 %s is "
                                      "defined later, by node s"):
        g.add_node("relu", [g.value("s")], before=g.node("h"))
    with pytest.raises(IRError, match="give before= or after=, not both"):
        g.add_node("relu", [h], before=g.node("s"), after=g.node("h"))
    chunkc.verify(g)


def test_inserting_block_places_builder_ops_in_order():
    g = small()
    h = g.value("h")
    with g.inserting(after=h.producer):
        t = O.tanh(h, name="t")
        u = t * 2.0  # operators and scalar constants too
        v = O.neg(u, name="v")
    assert names(g.nodes)[:5] == ["h", "t", "mul", "v", "s"]
    assert O.relu(v, name="tail").producer is g.nodes[-1]  # after the block: at the end again
    with g.inserting(after=g.nodes[-1]):  # after the last node: the end
        assert O.relu(v, name="end").producer is g.nodes[-1]
    with pytest.raises(IRError, match="exactly one of before= or after="):
        with g.inserting():
            pass
    chunkc.verify(g)


# -- dce ----------------------------------------------------------------------------------------------


def test_dce_erases_dead_chains_and_unused_constants():
    g = small()
    (want,) = chunkc.interpret(g, X)
    x = g.value("x")
    chain = O.exp(O.tanh(x + 3.0), name="chain")  # a dead chain with a scalar constant
    g.add_constant("unused", np.ones(3, np.float32))
    assert g.dce() == 6  # dead, add, tanh, chain; and the constants scalar and unused (w is read)
    assert names(g.nodes) == ["h", "s", "y"] and [c.name for c in g.constants] == ["w"]
    assert g.inputs == [x] and not g.has_name("chain")
    assert g.scalar(3.0, "f32").name == "scalar"  # the shared constant was forgotten with its node
    assert g.dce() == 1 and g.dce() == 0
    chunkc.verify(g)
    np.testing.assert_allclose(chunkc.interpret(g, X)[0], want)
    assert chain.users == ()


@settings(max_examples=25)
@given(random_graphs(max_nodes=12), st.data())
def test_dce_keeps_what_the_outputs_need(case, data):
    g = case.graph
    kept = data.draw(st.lists(st.sampled_from(g.values()), min_size=1, max_size=3))
    g.set_outputs(*kept)
    arrays = case.inputs()
    want = chunkc.interpret(g, *arrays)
    needed = set()
    stack = [v.producer for v in kept if v.producer is not None]
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(v.producer for v in n.inputs if v.producer is not None)
    g.dce()
    assert set(g.nodes) == needed
    chunkc.verify(g)
    for a, b in zip(chunkc.interpret(g, *arrays), want):
        np.testing.assert_array_equal(a, b)


# -- transactions ---------------------------------------------------------------------------------


def test_a_failed_transaction_leaves_the_graph_exactly_as_it_was():
    g = small()
    g.scalar(2.0, "f32")
    before = snapshot(g)
    with pytest.raises(IRError, match="softmax"):
        with g.transaction():
            h = g.value("h")
            with g.inserting(before=g.node("s")):
                h2 = O.add(h, 1.5, name="h2")  # a new shared scalar, a node, names
            g.replace_all_uses(h, h2)
            g.erase(g.node("dead"))
            g.rename(g.node("y"), "renamed")
            g.set_outputs(h2)
            g.add_constant("wc", np.zeros(2, np.float32))
            O.softmax(h2, axis=7)  # fails: everything above is undone
    assert snapshot(g) == before
    chunkc.verify(g)
    assert O.add(g.value("h"), 1.5, name="h2").name == "h2"  # names were given back


def test_nested_transactions_undo_only_what_failed():
    g = small()
    with g.transaction():
        O.relu(g.value("h"), name="kept")
        state = snapshot(g)
        with pytest.raises(IRError):
            with g.transaction():
                O.relu(g.value("h"), name="dropped")
                O.softmax(g.value("h"), axis=9)
        assert snapshot(g) == state
    assert g.has_name("kept") and not g.has_name("dropped")
    with pytest.raises(KeyError):  # an outer failure undoes the inner block's edits too
        with g.transaction():
            with g.transaction():
                O.relu(g.value("h"), name="inner")
            raise KeyError("outer fails")
    assert not g.has_name("inner")
    chunkc.verify(g)


def test_failed_builder_call_leaves_no_scalar_behind():
    g = small()
    before = snapshot(g)
    with pytest.raises(IRError, match="takes 1 inputs"):
        O.relu(g.value("h"), 5.0)
    assert snapshot(g) == before


# -- names, verifier, text form ------------------------------------------------------------------------


def test_rename_keeps_the_name_table():
    g = small()
    g.rename(g.node("s"), "probs")  # a node sharing its name with its output: the output keeps "s"
    assert g.has_name("probs") and g.has_name("s")
    g.rename(g.value("s"), "probs")  # and may take the node's name back
    assert not g.has_name("s")
    with pytest.raises(IRError, match="cannot rename h to y: the name is already used"):
        g.rename(g.node("h"), "y")
    with pytest.raises(IRError, match="is not an identifier"):
        g.rename(g.node("h"), "a b")
    chunkc.verify(g)


@pytest.mark.parametrize("tamper, message", [
    (lambda g: setattr(g.node("y"), "inputs", (g.value("s"), g.value("s"))),
     r"node y \(add\) reads %s 2 time\(s\), but the use list of %s records 1"),
    (lambda g: g.nodes.remove(g.node("dead")),
     r"the use list of %x names node dead \(exp\), which is not in the schedule"),
    (lambda g: g._names.add("ghost"), r"the name table is out of date \(names of removed values or nodes: \['ghost'\]"),
    (lambda g: g._names.discard("w"), r"names missing from it: \['w'\]"),
])
def test_verifier_catches_edits_that_bypass_the_graph(tamper, message):
    g = small()
    tamper(g)
    with pytest.raises(IRError, match=message):
        chunkc.verify(g)


def test_edited_graph_prints_and_parses_back():
    g = small()
    h = g.value("h")
    with g.inserting(after=h.producer):
        h2 = O.mul(h, 2.0, name="h2")
    g.replace_all_uses(h, h2)
    g.erase(g.node("dead"))
    g.dce()
    text = chunkc.print_graph(g)
    back = chunkc.parse_graph(text, weights={"w": g.value("w").data})
    assert chunkc.print_graph(back) == text
    chunkc.verify(back)
    assert names(back.value("h2").users) == ["s", "y"]
    np.testing.assert_allclose(chunkc.interpret(back, X)[0], chunkc.interpret(g, X)[0])


def test_the_in_place_rewrite_in_the_docs_runs():
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "ir.md").read_text()
    section = doc[doc.index("## Editing a graph"):doc.index("## The verifier and the interpreter")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    graph = Graph("mlp")
    x = graph.add_input("x", "f32", ("L", 8))
    graph.set_outputs(O.relu(O.gelu(x)), O.gelu(x * 2.0))
    namespace = {"graph": graph, "O": O}
    exec(compile(code, "docs/ir.md", "exec"), namespace)  # our own documentation
    g = namespace["g"]
    chunkc.verify(g)
    assert "gelu" not in [n.op.name for n in g.nodes] and len(graph.nodes) == 4  # the original is untouched
    a = RNG.standard_normal((3, 8)).astype(np.float32)

    def approx(v):
        return v / (1 + np.exp(-1.702 * v))
    relu_out, scaled_out = chunkc.interpret(g, a)
    np.testing.assert_allclose(relu_out, np.maximum(approx(a), 0), rtol=1e-5)
    np.testing.assert_allclose(scaled_out, approx(2 * a), rtol=1e-5)
