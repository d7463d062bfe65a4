"""The builder API: the worked example of docs/ir.md runs and matches PyTorch, every graph
the builder makes passes the verifier, and builder errors name the op and the fault."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import chunkc
from chunkc import ops as O
from chunkc.errors import IRError
from chunkc.ir import DType, Graph, TensorType, sym
from chunkc.ir.sizes import ceildiv, sizes_equal
from strategies import random_graphs

DOC = Path(__file__).resolve().parent.parent / "docs" / "ir.md"


def _doc_block(marker: str) -> str:
    """The fenced block that follows ``<!-- {marker} -->`` in docs/ir.md."""
    m = re.search(rf"<!-- {re.escape(marker)} -->\n```[a-z]*\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert m, f"docs/ir.md has no block marked {marker}"
    return m.group(1)


@pytest.fixture(scope="module")
def doc_example():
    namespace: dict = {"__name__": "docs_ir_example"}
    exec(compile(_doc_block("example: transformer_block"), str(DOC), "exec"), namespace)  # our own docs
    return namespace


def _torch_block(x, p, heads):
    """The same pre-LN block written with torch.nn.functional."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v).double() for k, v in p.items()}
    x = torch.from_numpy(x).double()
    b, l, d = x.shape
    h = F.layer_norm(x, (d,), t["ln1_w"], t["ln1_b"], eps=1e-5)

    def split(z):
        return z.reshape(b, l, heads, d // heads).transpose(1, 2)
    q, k, v = (split(F.linear(h, t[f"w{n}"], t[f"b{n}"])) for n in "qkv")
    ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, l, d)
    x = x + F.linear(ctx, t["wo"], t["bo"])
    h = F.layer_norm(x, (d,), t["ln2_w"], t["ln2_b"], eps=1e-5)
    return (x + F.linear(F.gelu(F.linear(h, t["w1"], t["b1"])), t["w2"], t["b2"])).numpy()


def test_doc_example_matches_pytorch(doc_example):
    graph, x, y = doc_example["graph"], doc_example["x"], doc_example["y"]
    ref = _torch_block(x, doc_example["make_params"](), doc_example["HEADS"])
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    # the same graph serves another batch and sequence length
    x2 = np.random.default_rng(5).standard_normal((1, 7, doc_example["D"])).astype(np.float32)
    np.testing.assert_allclose(chunkc.interpret(graph, x2)[0], _torch_block(x2, doc_example["make_params"](),
                                                                            doc_example["HEADS"]), rtol=1e-4, atol=1e-4)


def test_doc_example_prints_what_the_doc_shows(doc_example):
    assert chunkc.print_graph(doc_example["graph"]) == _doc_block("output: transformer_block")


def test_doc_example_round_trips_through_text(doc_example):
    graph = doc_example["graph"]
    back = chunkc.parse_graph(chunkc.print_graph(graph), weights={c.name: c.data for c in graph.constants})
    np.testing.assert_array_equal(chunkc.interpret(back, doc_example["x"])[0], doc_example["y"])


def test_doc_text_form_example_round_trips():
    text = _doc_block("example: text_form")
    g = chunkc.parse_graph(text)
    chunkc.verify(g)
    assert chunkc.print_graph(g) == text
    assert g.node("split").outputs[1].name == "b"


@settings(max_examples=60)
@given(random_graphs(max_nodes=12))
def test_builder_never_builds_a_graph_the_verifier_rejects(case):
    chunkc.verify(case.graph)
    outs = chunkc.interpret(case.graph, *case.inputs())
    for v, a in zip(case.graph.outputs, outs):
        assert a.shape == v.type.concrete_shape(case.sizes) and a.dtype == v.dtype.numpy, v
        assert np.isfinite(a).all()


@settings(max_examples=20)
@given(random_graphs(max_nodes=12, symbolic=False))
def test_builder_with_static_sizes_passes_the_verifier(case):
    chunkc.verify(case.graph)
    assert not case.graph.symbols()


# -- details of the builder ---------------------------------------------------------------


def test_python_numbers_become_constants_of_the_other_dtype():
    g = Graph("n")
    x = g.add_input("x", "f16", (3,))
    i = g.add_input("i", "i32", (3,))
    y = x * 2
    assert y.dtype == DType.float16 and y.producer.inputs[1].is_constant
    assert y.producer.inputs[1].data.dtype == np.float16 and y.producer.inputs[1].shape == ()
    assert (i + 1).dtype == DType.int32
    assert (i * 0.5).dtype == DType.float32  # a float scalar never truncates to int
    m = O.logical_and(O.gt(x, 0.0), True)
    assert m.dtype == DType.bool and m.producer.inputs[1].data.dtype == np.bool_
    # NumPy scalars behave like the Python numbers they hold
    assert (i * np.float32(0.5)).producer.inputs[1].data == 0.5
    assert O.logical_or(m, np.bool_(False)).producer.inputs[1].data.dtype == np.bool_


def test_equal_scalar_constants_are_shared():
    g = Graph("shared")
    x = g.add_input("x", "f32", (3,))
    i = g.add_input("i", "i64", (3,))
    a, b, c = x + 1.0, x * 1, 1.0 - x  # the same f32 1.0 each time, whichever way it is spelled
    assert a.producer.inputs[1] is b.producer.inputs[1] is c.producer.inputs[0]
    assert (i + 1).producer.inputs[1] is not a.producer.inputs[1]  # another dtype: another constant
    zero, negative_zero = (x + 0.0).producer.inputs[1], (x + -0.0).producer.inputs[1]
    assert zero is not negative_zero  # equal as numbers, not bit for bit
    assert g.scalar(1.0, "f32") is a.producer.inputs[1]
    assert [c.name for c in g.constants] == ["scalar", "scalar_1", "scalar_2", "scalar_3"]
    copy = g.copy()  # a copy shares its own constants the same way
    assert copy.value("add").producer.inputs[1] is copy.scalar(1.0, "f32")
    g.set_outputs(a, b, c)
    chunkc.verify(g)
    np.testing.assert_allclose(chunkc.interpret(g, np.arange(3, dtype=np.float32), np.arange(3))[2], [1, 0, -1])


def test_strings_name_symbols_in_every_size_attribute():
    g = Graph("sym")
    x = g.add_input("x", "f32", ("L", 4))
    r = O.arange(end="L", graph=g)
    assert r.type == TensorType("i64", ("L",))
    assert sizes_equal(g.op("arange", start="L", end="2*L", step=2).shape[0], ceildiv(sym("L"), 2))
    assert g.op("full", shape=("L", 2), value=1.0).shape == (sym("L"), 2)
    assert O.reshape(x, shape=("2*L", 2)).shape == (2 * sym("L"), 2)
    assert sizes_equal(O.slice(x, axis=0, start="L//2").shape[0], sym("L") - sym("L") // 2)
    assert g.op("arange", start=0.5, end=2.0, step=0.5).type == TensorType("f32", (3,))  # floats stay numbers
    g.set_outputs(r)
    (out,) = chunkc.interpret(g, np.zeros((5, 4), np.float32))
    np.testing.assert_array_equal(out, np.arange(5))
    with pytest.raises(IRError, match=r"op arange: no input is a graph Value .* pass graph="):
        O.arange(end="L")
    with pytest.raises(IRError, match=r"op arange \(node arange_\d\): attribute end: bad size expression 'L\*'"):
        O.arange(end="L*", graph=g)
    with pytest.raises(IRError, match="node reshape_1: op reshape.*not float 1.5"):
        O.reshape(x, shape=(1.5,))


def test_a_number_needs_a_value_beside_it_and_must_fit_its_dtype():
    g = Graph("n")
    with pytest.raises(IRError, match=r"op add: input 0 is the number 1, and no input is a Value .* graph.scalar"):
        g.op("add", 1, 2)
    small = g.add_input("small", "i8", (3,))
    with pytest.raises(IRError, match=r"graph n: the number 1000 cannot be a i8 constant"):
        small + 1000
    assert g.constants == [] and g.nodes == []


def test_python_numbers_next_to_bf16_values_make_bf16_constants():
    pytest.importorskip("ml_dtypes")
    g = Graph("bf")
    x = g.add_input("x", "bf16", (3,))
    y = x * 2
    assert y.dtype == DType.bfloat16 and y.producer.inputs[1].dtype == DType.bfloat16
    chunkc.verify(g)


def test_operator_sugar_builds_the_named_ops():
    g = Graph("s")
    a = g.add_input("a", "f32", (2, 3))
    b = g.add_input("b", "f32", (3, 2))
    exprs = {"add": a + 1, "sub": 1 - a, "mul": 2 * a, "div": a / 2, "matmul": a @ b, "neg": -a, "pow": a ** 2}
    for op, v in exprs.items():
        assert v.producer.op.name == op
    assert exprs["sub"].producer.inputs[1] is a  # reflected: 1 - a keeps the order
    outs = chunkc.interpret(_with_outputs(g, list(exprs.values())), np.full((2, 3), 3, np.float32),
                            np.ones((3, 2), np.float32))
    np.testing.assert_allclose(outs[1], -2.0)
    np.testing.assert_allclose(outs[4], 9.0)
    np.testing.assert_allclose(outs[6], 9.0)


def _with_outputs(g, values):
    g.set_outputs(*values)
    return g


def test_transpose_and_names():
    g = Graph("my graph!")
    assert g.name == "my_graph_"
    x = g.add_input("x.0", "f32", ("B", 4, 5))
    assert x.name == "x_0"
    t = O.transpose(x, 1, 2, name="t")
    assert t.shape[1:] == (5, 4) and t.producer.attrs["dims"] == (0, 2, 1)
    t2 = O.transpose(x, -1, -2, name="t")
    assert t2.name == "t_1" and t2.producer.name == "t_1"
    r = O.relu(x, name="9 lives")
    assert r.name == "v9_lives"


def test_builder_errors_name_the_op_and_the_fault():
    g = Graph("e")
    x = g.add_input("x", "f32", ("L", 4))
    with pytest.raises(IRError, match="node matmul: op matmul"):
        O.matmul(x, x)
    with pytest.raises(IRError, match=r"op softmax \(node softmax\): unknown attribute\(s\) \['dim'\]"):
        O.softmax(x, dim=1)
    with pytest.raises(IRError, match="missing required attribute 'dims'"):
        O.permute(x)
    with pytest.raises(IRError, match="takes 2 inputs, got 1"):
        O.add(x)
    with pytest.raises(AttributeError, match="no op 'frobnicate'"):
        O.frobnicate(x)
    with pytest.raises(IRError, match="neither a Value nor a number"):
        O.add(x, "1")
    other = Graph("other").add_input("y", "f32", ("L", 4))
    with pytest.raises(IRError, match="belongs to another graph"):
        O.add(x, other)
    assert [n.name for n in g.nodes] == []  # failed builds leave nothing behind
    assert O.relu(x).name == "relu"  # and free their names


def test_graph_helpers():
    g = Graph("h")
    x = g.add_input("x", "f32", ("B", "L"))
    y = O.relu(x)
    z = O.add(x, y)
    g.set_outputs(z)
    users = g.users()
    assert [n.name for n in users[x]] == ["relu", "add"] and users[z] == []
    assert g.symbols() == {"B", "L"}
    assert g.bind_sizes([np.zeros((2, 3))]) == {"B": 2, "L": 3}
    copy = g.copy()
    assert chunkc.print_graph(copy) == chunkc.print_graph(g) and copy.nodes[0] is not g.nodes[0]
    with pytest.raises(IRError, match="used before it is defined"):
        g.reordered(["add", "relu"])
    assert [n.name for n in g.reordered(["relu", "add"]).nodes] == ["relu", "add"]
