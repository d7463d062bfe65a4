"""The reference interpreter: values are freed right after their last reader, errors name
the node, and symbolic sizes are solved from the inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings

import chunkc
from chunkc import ops as O
from chunkc.errors import ChunkcError, IRError
from chunkc.ir import Graph
from chunkc.ir.interpreter import interpret
from strategies import random_graphs


def expected_live(graph: Graph) -> list[set[str]]:
    """Independently of the interpreter: for each node, the values that must be held right
    after it runs (before freeing): every input and constant, and every node output made so
    far that is read by this node or a later one, is a graph output, or was just made."""
    readers: dict[str, list[int]] = {}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            readers.setdefault(v.name, []).append(i)
    outputs = {v.name for v in graph.outputs}
    always = {v.name for v in graph.inputs} | {v.name for v in graph.constants}
    live = []
    for i in range(len(graph.nodes)):
        alive = set(always)
        for j, m in enumerate(graph.nodes[: i + 1]):
            for o in m.outputs:
                if j == i or o.name in outputs or any(r >= i for r in readers.get(o.name, [])):
                    alive.add(o.name)
        live.append(alive)
    return live


def _record(graph, inputs):
    seen: list[set[str]] = []
    outs = interpret(graph, *inputs, on_node=lambda node, env: seen.append({v.name for v in env}))
    return outs, seen


@settings(max_examples=40)
@given(random_graphs(max_nodes=12))
def test_env_holds_exactly_the_live_set(case):
    _, seen = _record(case.graph, case.inputs())
    assert seen == expected_live(case.graph)


def test_chain_frees_each_value_after_its_last_reader():
    g = Graph("chain")
    x = g.add_input("x", "f32", (4,))
    a = O.relu(x, name="a")
    b = O.neg(a, name="b")
    c = O.add(a, b, name="c")  # a's last reader
    d = O.exp(c, name="d")
    O.sin(d, name="dead")  # nobody reads it: freed at once
    e = O.cos(d, name="e")
    g.set_outputs(b, e)  # b is an output: never freed
    _, seen = _record(g, [np.ones(4, np.float32)])
    assert seen == [{"x", "a"}, {"x", "a", "b"}, {"x", "a", "b", "c"}, {"x", "b", "c", "d"},
                    {"x", "b", "d", "dead"}, {"x", "b", "d", "e"}]
    assert max(map(len, seen)) == 4


def test_outputs_are_correct_and_inputs_can_be_outputs():
    g = Graph("io")
    x = g.add_input("x", "f32", ("L", 3))
    y = O.sum(x * 2, axes=1)
    g.set_outputs(x, y, y)
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    outs = chunkc.interpret(g, data)
    np.testing.assert_array_equal(outs[0], data)
    np.testing.assert_array_equal(outs[1], [6, 24])
    assert outs[2] is outs[1]


def test_zero_d_results_are_arrays():
    g = Graph("scalar")
    x = g.add_input("x", "f32", (3,))
    g.set_outputs(O.tanh(O.sum(x)))
    (out,) = chunkc.interpret(g, np.ones(3, np.float32))
    assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == np.float32


def test_symbolic_attributes_are_evaluated_per_call():
    g = Graph("sym")
    x = g.add_input("x", "f32", ("B", "L", 6))
    r = O.reshape(x, shape=("B", "L", 2, 3))
    g.set_outputs(O.slice(r, axis=1, start=1), O.reshape(r, shape=("B", -1)))
    for b, l in [(1, 2), (3, 5)]:
        data = np.random.default_rng(0).standard_normal((b, l, 6)).astype(np.float32)
        s, flat = chunkc.interpret(g, data)
        np.testing.assert_array_equal(s, data.reshape(b, l, 2, 3)[:, 1:])
        assert flat.shape == (b, l * 6)


def test_runtime_errors_name_the_node_and_keep_the_cause():
    g = Graph("err")
    x = g.add_input("x", "f32", (2, 3))
    y = O.relu(x, name="act")

    def boom(xp, a):
        raise RuntimeError("boom")
    y.producer.op = dataclasses.replace(y.producer.op, reference=boom)
    g.set_outputs(y)
    with pytest.raises(ChunkcError, match=r"node act \(relu\) failed on inputs of shapes \(2, 3\): "
                                          "RuntimeError: boom") as info:
        chunkc.interpret(g, np.ones((2, 3), np.float32))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_input_errors_name_the_input():
    g = Graph("inp")
    x = g.add_input("x", "f32", ("L", "L"))
    w = g.add_input("w", "f32", ("L", 4))
    g.set_outputs(x @ w)
    with pytest.raises(IRError, match="takes 2 inputs"):
        chunkc.interpret(g, np.ones((3, 3), np.float32))
    with pytest.raises(IRError, match=r"input %x: expected rank 2"):
        chunkc.interpret(g, np.ones(3, np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(IRError, match=r"input %x axis 1: expected L = 3, got 4"):
        chunkc.interpret(g, np.ones((3, 4), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(IRError, match=r"input %w axis 1: expected size 4, got 5"):
        chunkc.interpret(g, np.ones((3, 3), np.float32), np.ones((3, 5), np.float32))


def test_shape_only_constants_cannot_run():
    g = chunkc.parse_graph("graph @g(%x: f32[20]) {\n  const %w: f32[20]\n  %y: f32[20] = add(%x, %w)\n"
                           "  return %y\n}\n")
    with pytest.raises(ChunkcError, match="constant %w has no data"):
        chunkc.interpret(g, np.ones(20, np.float32))


_UNARY_FLOAT_OPS = sorted(name for name, op in chunkc.ir.all_ops().items()
                          if op.num_inputs == (1, 1) and not any(v is chunkc.ir.REQUIRED for v in op.attrs.values()))


def _accepts_0d(op: str) -> bool:
    g = Graph("probe")
    try:
        g.op(op, g.add_input("x", "f32", ()))
    except IRError:
        return False  # the op refuses 0-d inputs when the node is built (softmax needs an axis...)
    return True


@pytest.mark.parametrize("op", [op for op in _UNARY_FLOAT_OPS if _accepts_0d(op)])
def test_single_input_ops_run_on_0d_values(op):
    """A reduction to a scalar feeds a 0-d array to the next op; every reference must accept it."""
    g = Graph("zero_d")
    x = g.add_input("x", "f32", ())
    y = g.op(op, x)
    g.set_outputs(*(y if isinstance(y, tuple) else (y,)))
    with np.errstate(all="ignore"):
        outs = chunkc.interpret(g, np.array(0.5, np.float32))
    for v, a in zip(g.outputs, outs):
        assert isinstance(a, np.ndarray) and a.shape == () and a.dtype == v.dtype.numpy
