"""The verifier accepts what the builder makes and names the fault in tampered graphs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import chunkc
from chunkc import ops as O
from chunkc.errors import IRError
from chunkc.ir import Graph, TensorType
from chunkc.ir.graph import Value
from strategies import random_graphs


def _small():
    g = Graph("small")
    x = g.add_input("x", "f32", ("L", 4))
    w = g.add_constant("w", np.ones((4, 4), np.float32))
    h = O.matmul(x, w, name="h")
    s = O.softmax(h, axis=-1, name="s")
    y = O.add(s, h, name="y")
    g.set_outputs(y)
    chunkc.verify(g)
    return g


@settings(max_examples=30)
@given(random_graphs(max_nodes=10), st.data())
def test_non_topological_order_is_caught(case, data):
    g = case.graph
    dependent = [(i, n) for i, n in enumerate(g.nodes) if any(v.producer is not None for v in n.inputs)]
    assume(dependent)
    i, node = data.draw(st.sampled_from(dependent))
    producer = next(v.producer for v in node.inputs if v.producer is not None)
    j = g.nodes.index(producer)
    g.nodes.insert(j, g.nodes.pop(i))  # move the reader before its producer
    with pytest.raises(IRError, match=rf"node {node.name} \({node.op.name}\): input \d+ %\w+ is used before "
                                      r"it is defined \(schedule is not topological\)"):
        chunkc.verify(g)


@settings(max_examples=30)
@given(random_graphs(max_nodes=10), st.data())
def test_tampered_output_types_are_caught(case, data):
    g = case.graph
    node = data.draw(st.sampled_from(g.nodes))
    out = node.outputs[0]
    if data.draw(st.booleans()):
        out.type = out.type.with_dtype("f64")
    else:
        out.type = out.type.with_shape(out.shape + (2,))
    with pytest.raises(IRError, match=rf"node {node.name} .*: output %{out.name} is typed "
                                      rf"{re.escape(str(out.type))} but its op infers"):
        chunkc.verify(g)


def test_dangling_outputs_are_caught():
    g = _small()
    g.nodes.pop()  # y's node leaves the schedule, y stays an output
    with pytest.raises(IRError, match=r"output %y is not defined in the graph \(produced by node y, which is "
                                      "not in the schedule\\)"):
        chunkc.verify(g)
    g = _small()
    g.outputs.append(Graph("other").add_input("z", "f32", (1,)))
    with pytest.raises(IRError, match="output %z is not defined in the graph"):
        chunkc.verify(g)


def test_dangling_inputs_are_caught():
    g = _small()
    stray = Value(g, "stray", TensorType("f32", ("L", 4)))
    g.node("y").inputs = (g.value("s"), stray)
    with pytest.raises(IRError, match="node y .*input 1 %stray is used before it is defined"):
        chunkc.verify(g)


@pytest.mark.parametrize("tamper, message", [
    (lambda g: setattr(g.value("s"), "name", "h"), "value name %h is defined twice"),
    (lambda g: setattr(g.value("h"), "name", "x"), "value name %x is defined twice"),
    (lambda g: setattr(g.constants[0], "name", "x"), "value name %x is defined twice"),
    (lambda g: setattr(g.node("y"), "name", "x"), r"node x \(add\): the node's name is also the name of a value"),
    (lambda g: setattr(g.node("s"), "name", "w"), r"node w \(softmax\): the node's name is also the name of a value"),
    (lambda g: [setattr(g.node("y"), "name", "h"), setattr(g.value("y"), "name", "h2"),
                setattr(g.node("h"), "name", "h")], "node h .*node name used twice"),
])
def test_duplicated_names_are_caught(tamper, message):
    g = _small()
    tamper(g)
    with pytest.raises(IRError, match=message):
        chunkc.verify(g)


@pytest.mark.parametrize("tamper, message", [
    (lambda g: g.node("s").attrs.update(axis=5), r"node s \(softmax\): op softmax: axis 5 is out of range"),
    (lambda g: g.node("s").attrs.pop("axis"), r"node s \(softmax\): has attributes \[\], its op takes \['axis'\]"),
    (lambda g: setattr(g.node("y"), "inputs", (g.value("s"),)), r"op add \(node y\): takes 2 inputs, got 1"),
    (lambda g: setattr(g.constants[0], "data", np.ones((4, 4), np.float64)),
     r"constant %w has data of dtype float64 and shape \(4, 4\), which does not match its type f32\[4, 4\]"),
    (lambda g: setattr(g.constants[0], "data", np.ones((4, 5), np.float32)), "constant %w has data"),
    (lambda g: setattr(g.inputs[0], "kind", "constant"), "input %x has kind 'constant'"),
    (lambda g: setattr(g.value("h"), "producer", g.node("s")), r"node h .*output 0 %h does not record this node"),
    (lambda g: setattr(g.value("h"), "index", 1), r"node h .*output 0 %h does not record this node"),
    (lambda g: setattr(g.node("h"), "outputs", ()), r"node h \(matmul\): has 0 outputs, its op infers 1"),
    (lambda g: setattr(g.node("s"), "graph", Graph("other")), r"node s \(softmax\): belongs to another graph"),
])
def test_other_broken_invariants_are_caught(tamper, message):
    g = _small()
    tamper(g)
    with pytest.raises(IRError, match=message):
        chunkc.verify(g)


def test_shape_only_constants_and_symbolic_types_verify():
    g = chunkc.parse_graph("graph @g(%x: f32[L, 4]) {\n  const %w: f32[4, 4]\n"
                           "  %y: f32[L, 4] = matmul(%x, %w)\n  %z: f32[2*L, 2] = reshape(%y) {shape = (size(2*L), 2)}\n"
                           "  return %z\n}\n")
    chunkc.verify(g)
    assert g.constants[0].data is None
