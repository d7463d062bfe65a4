"""The text form: print -> parse -> print is the identity, parsing rebuilds the same graph,
errors name the line and column, and save/load keep constant data bit-exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chunkc
from chunkc import ops as O
from chunkc.errors import IRError, ParseError
from chunkc.ir import DType, Graph, has_op, sym
from chunkc.ir.parser import parse_attribute, parse_graph
from chunkc.ir.printer import INLINE_LIMIT, format_attr, print_graph
from strategies import assert_same_graph, random_graphs

BLOCK = """\
graph @block(%x: f32[B, L, 8], %mask: bool[L, L]) {
  const %w: f32[32, 8]
  const %scale: f32[] = 0.125
  %linear: f32[B, L, 32] = linear(%x, %w)
  %gelu: f32[B, L, 32] = gelu(%linear) {approximate = "none"}
  %r: f32[B, L, 4, 8] = reshape(%gelu) {shape = (size(B), size(L), 4, 8)}
  %q: f32[B, 4, L, 8] = permute(%r) {dims = (0, 2, 1, 3)}
  %k: f32[B, 4, 8, L] = permute(%q) {dims = (0, 1, 3, 2)}
  %s: f32[B, 4, L, L] = matmul(%q, %k)
  %scaled: f32[B, 4, L, L] = mul(%s, %scale)
  %masked: f32[B, 4, L, L] = masked_fill(%scaled, %mask) {value = -inf}
  %p: f32[B, 4, L, L] = softmax(%masked) {axis = -1} @attention_probs
  %tail: f32[B, 4, L - 1, L] = slice(%p) {axis = 2, start = 1, end = none, step = 1}
  return %p, %tail
}
"""


def _block_inputs(b=2, l=5):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((b, l, 8)).astype(np.float32), np.triu(np.ones((l, l), bool), k=1)]  # True: masked out (causal)


def test_golden_text_parses_prints_back_and_runs():
    w = np.random.default_rng(1).standard_normal((32, 8)).astype(np.float32)
    g = parse_graph(BLOCK, weights={"w": w})
    chunkc.verify(g)
    assert print_graph(g) == BLOCK
    assert g.name == "block"
    assert [v.name for v in g.inputs] == ["x", "mask"]
    assert g.node("attention_probs").outputs[0].name == "p"
    assert g.node("attention_probs").op.name == "softmax"
    assert g.value("r").producer.attrs["shape"] == (sym("B"), sym("L"), 4, 8)
    assert math.isinf(g.node("masked").attrs["value"]) and g.node("masked").attrs["value"] < 0
    x, mask = _block_inputs()
    p, tail = chunkc.interpret(g, x, mask)
    # independent NumPy computation of the same block
    h = x @ w.T
    from scipy.special import erf
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    q = h.reshape(2, 5, 4, 8).transpose(0, 2, 1, 3)
    s = np.where(mask, -np.inf, (q @ q.transpose(0, 1, 3, 2)) * 0.125)
    ref = np.exp(s - s.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tail, p[:, :, 1:])


def test_parsed_graph_equals_the_built_one():
    g = Graph("block")
    x = g.add_input("x", "f32", ("B", "L", 8))
    mask = g.add_input("mask", "bool", ("L", "L"))
    w = g.add_constant("w", np.zeros((32, 8), np.float32))
    r = O.reshape(O.gelu(O.linear(x, w)), shape=("B", "L", 4, 8), name="r")
    q = O.permute(r, dims=(0, 2, 1, 3), name="q")
    s = O.matmul(q, O.permute(q, dims=(0, 1, 3, 2), name="k"), name="s")
    scale = g.add_constant("scale", np.float32(0.125))
    masked = O.masked_fill(O.mul(s, scale, name="scaled"), mask, value=-math.inf, name="masked")
    node = g.add_node("softmax", [masked], {"axis": -1}, name="attention_probs", output_names=["p"])
    p = node.outputs[0]
    tail = O.slice(p, axis=2, start=1, name="tail")
    g.set_outputs(p, tail)
    text = print_graph(g)
    assert text == BLOCK
    assert_same_graph(parse_graph(text, weights={"w": w.data}), g)


@settings(max_examples=40)
@given(random_graphs(max_nodes=10))
def test_print_parse_print_is_the_identity_on_random_graphs(case):
    g = case.graph
    text = print_graph(g)
    back = parse_graph(text, weights={c.name: c.data for c in g.constants if c.data.size > INLINE_LIMIT})
    assert print_graph(back) == text
    assert_same_graph(back, g)
    chunkc.verify(back)
    inputs = case.inputs()
    for a, b in zip(chunkc.interpret(g, *inputs), chunkc.interpret(back, *inputs)):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=15)
@given(random_graphs(max_nodes=8, symbolic=False))
def test_round_trip_with_static_sizes(case):
    text = print_graph(case.graph)
    assert print_graph(parse_graph(text)) == text  # shape-only constants print the same


# -- constants ------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    np.array([0.1, -0.0, 1e-45, 3.4028235e38, np.inf, -np.inf, 1 / 3, 16777217.0], np.float32),
    np.array([[0.1, 1e-300], [np.pi, -5e-324]], np.float64),
    np.array([0.1, 6.1e-05, 65504.0, -0.0], np.float16),
    np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0], np.int64),
    np.array([[1, -2], [3, 127]], np.int8),
    np.array([0, 255], np.uint8),
    np.array([[True, False, True]]),
    np.array(2.5, np.float32),
    np.array(7, np.int32),
    np.zeros((0, 3), np.float32),
    np.zeros((2, 0), np.int64),
])
def test_inline_constants_round_trip_bit_exactly(data):
    g = Graph("c")
    c = g.add_constant("c", data)
    x = g.add_input("x", data.dtype, data.shape)
    g.set_outputs(x, c)
    text = print_graph(g)
    assert " = " in text.splitlines()[1]  # printed inline
    back = parse_graph(text)
    d = back.constants[0].data
    assert d.dtype == data.dtype and d.shape == data.shape and d.tobytes() == data.tobytes()
    assert print_graph(back) == text


def test_nan_constant_round_trips():
    data = np.array([np.nan, 1.0], np.float32)
    g = Graph("n")
    g.add_constant("c", data)
    text = print_graph(g)
    assert "[nan, 1.0]" in text
    d = parse_graph(text).constants[0].data
    assert np.isnan(d[0]) and d[1] == 1.0


def test_float32_constants_print_short():
    g = Graph("s")
    g.add_constant("c", np.array([0.1, 0.2, 1e-8], np.float32))
    assert "[0.1, 0.2, 1e-08]" in print_graph(g)


def test_large_constants_print_shape_only_and_take_weights():
    data = np.arange(INLINE_LIMIT + 1, dtype=np.float32)
    g = Graph("big")
    x = g.add_input("x", "f32", (INLINE_LIMIT + 1,))
    g.set_outputs(O.add(x, g.add_constant("w", data)))
    text = print_graph(g)
    assert f"const %w: f32[{INLINE_LIMIT + 1}]\n" in text
    shape_only = parse_graph(text)
    assert shape_only.constants[0].data is None
    assert print_graph(shape_only) == text
    with pytest.raises(chunkc.ChunkcError, match="constant %w has no data"):
        chunkc.interpret(shape_only, data)
    full = parse_graph(text, weights={"w": data})
    np.testing.assert_array_equal(chunkc.interpret(full, data)[0], 2 * data)
    with pytest.raises(ParseError, match=r"weights for %w have dtype float64 .* declares f32\[17\]"):
        parse_graph(text, weights={"w": data.astype(np.float64)})
    with pytest.raises(ParseError, match=r"weights for %w have dtype float32 and shape \(16,\)"):
        parse_graph(text, weights={"w": data[:-1]})
    with pytest.raises(ParseError, match="weights given for nope"):
        parse_graph(text, weights={"nope": data})


def test_weights_replace_inline_data():
    g = Graph("r")
    g.add_constant("c", np.array([1, 2], np.int64))
    back = parse_graph(print_graph(g), weights={"c": np.array([5, 6], np.int64)})
    assert back.constants[0].data.tolist() == [5, 6]


# -- attributes --------------------------------------------------------------------------

_scalars = st.one_of(
    st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=8), st.sampled_from(list(DType)),
    st.sampled_from([sym("L"), 4 * sym("L"), sym("B") * sym("L"), sym("L") // 16 + 1, sym("L") - 1]),
)
_attr_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=8)


def _same(a, b):
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)  # the text keeps no NaN sign or payload
    if isinstance(a, float):
        return isinstance(b, float) and a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b if not hasattr(a, "free_symbols") else a == b


@settings(max_examples=150)
@given(_attr_values)
def test_attribute_values_round_trip(value):
    text = format_attr(value)
    back = parse_attribute(text)
    assert _same(back, value), (text, back)
    assert format_attr(back) == text


@pytest.mark.parametrize("value, text", [
    ((1,), "(1,)"), ((), "()"), ((1, (2, 3)), "(1, (2, 3))"), (-0.0, "-0.0"), (float("-inf"), "-inf"),
    (1e-05, "1e-05"), ("a\"b\\\n\u00e9", '"a\\"b\\\\\\n\\u00e9"'), (DType.bool, "bool"), (True, "true"),
    (None, "none"), (sym("L") * 4, "size(4*L)"), (2**64, "18446744073709551616"),
])
def test_attribute_spelling(value, text):
    assert format_attr(value) == text


# -- names ------------------------------------------------------------------------------


def test_node_names_that_differ_from_their_output_are_printed_and_kept():
    g = Graph("n")
    x = g.add_input("x", "f32", (4,))
    node = g.add_node("relu", [x], name="act", output_names=["y"])
    g.set_outputs(node.outputs[0])
    text = print_graph(g)
    assert "  %y: f32[4] = relu(%x) @act\n" in text
    back = parse_graph(text)
    assert back.nodes[0].name == "act" and back.nodes[0].outputs[0].name == "y"


def test_long_names_are_kept_exactly():
    name = "a" * 70
    text = f"graph @{name}(%{name}: f32[2]) {{\n  %{name}_out: f32[2] = relu(%{name})\n  return %{name}_out\n}}\n"
    g = parse_graph(text)
    assert g.name == name and g.inputs[0].name == name and g.nodes[0].name == name + "_out"
    assert print_graph(g) == text


def test_many_inputs_wrap_one_per_line():
    g = Graph("wide")
    xs = [g.add_input(f"input_number_{k}", "f32", ("B", "L", 768)) for k in range(4)]
    g.set_outputs(*xs)
    text = print_graph(g)
    assert text.startswith("graph @wide(\n    %input_number_0: f32[B, L, 768],\n")
    assert print_graph(parse_graph(text)) == text


def test_comments_and_free_layout_are_accepted():
    text = """# a comment
    graph @g (%x : f32[L]) {   # inputs
      %y: f32[L] =
         relu(%x)
      return %y }"""
    assert print_graph(parse_graph(text)) == "graph @g(%x: f32[L]) {\n  %y: f32[L] = relu(%x)\n  return %y\n}\n"


def test_graph_without_inputs_or_outputs():
    g = Graph("empty")
    assert print_graph(g) == "graph @empty() {\n  return\n}\n"
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)


def test_unprintable_names_are_refused():
    g = Graph("bad")
    x = g.add_input("x", "f32", (2,))
    x.name = "not an identifier"
    with pytest.raises(IRError, match="not an identifier"):
        print_graph(g)


# -- errors -----------------------------------------------------------------------------

_GOOD = ["graph @g(%x: f32[L, 4]) {", "  %y: f32[L, 4] = relu(%x)", "  return %y", "}"]


def _with(line_no: int, line: str) -> str:
    lines = list(_GOOD)
    lines[line_no - 1] = line
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, line, message", [
    (_with(2, "  %y: f32[L, 4] = frobnicate(%x)"), 2, "unknown op 'frobnicate'"),
    (_with(2, "  %y: f32[L, 4] = rellu(%x)"), 2, "did you mean relu"),
    (_with(2, "  %y: f32[L, 4] = relu(%z)"), 2, "value %z is not defined"),
    (_with(2, "  %x: f32[L, 4] = relu(%x)"), 2, "name %x is already defined"),
    (_with(2, "  %y: f32[L, 5] = relu(%x)"), 2, r"%y is declared f32\[L, 5\], but relu infers f32\[L, 4\]"),
    (_with(2, "  %y: f32[L, 4], %z: f32[L, 4] = relu(%x)"), 2, "relu here has 1 outputs, but the statement names 2"),
    (_with(2, "  %y: f33[L, 4] = relu(%x)"), 2, "unknown dtype 'f33'"),
    (_with(2, "  %y: f32[L, 4 = relu(%x)"), 2, r"expected ',' or '\]' after a size"),
    (_with(2, "  %y: f32[L, 4] = relu(%x"), 3, r"expected ',' or '\)' after an input of relu"),
    (_with(2, "  %y: f32[L, 4] = relu(%x) {foo = 1}"), 2, "unknown attribute"),
    (_with(2, "  %y: f32[L, 4] = softmax(%x) {axis = 1, axis = 1}"), 2, "attribute axis is given twice"),
    (_with(2, "  %y: f32[L, 4] = softmax(%x) {axis = (1)}"), 2, "1-tuple, written"),
    (_with(2, "  %y: f32[L, 4] = softmax(%x) {axis = whatever}"), 2, "expected an attribute value"),
    (_with(2, "  %y: f32[L, 4] = relu(%x) $"), 2, "unexpected character '\\$'"),
    (_with(2, '  %y: f32[L, 4] = gelu(%x) {approximate = "none}'), 2, "unterminated string"),
    (_with(2, "  %y: f32[L, 4] = add(%x, %x, %x)"), 2, "takes 2 inputs, got 3"),
    (_with(2, "  %y: f32[L, 4] = matmul(%x, %x)"), 2, "node y: op matmul: contracted sizes differ"),
    (_with(2, "  %y: f32[__import__('os'), 4] = relu(%x)"), 2, "unexpected character"),
    (_with(2, "  %y: f32[L.real, 4] = relu(%x)"), 2, "unexpected character '.'"),
    (_with(2, "  %y: f32[L ** 2, 4] = relu(%x)"), 2, "bad size 'L \\*\\* 2'"),
    (_with(2, "  %y: f32[L, 4] = softmax(%x) {axis = size(L, 2)}"), 2, r"expected '\)' to close size"),
    (_with(2, "  %y: f32[-3, 4] = relu(%x)"), 2, "negative size"),
    (_with(2, "  %y: f32[-L, 4] = relu(%x)"), 2, "negative size"),
    (_with(2, "  %y: f32[L//0, 4] = relu(%x)"), 2, "undefined"),
    (_with(2, "  const %c: f32[2] = [1.0, 2.0, 3.0]"), 2, r"data has shape \(3,\), but the constant is declared f32\[2\]"),
    (_with(2, "  const %c: f32[2, 2] = [[1.0, 2.0], [3.0]]"), 2, "ragged"),
    (_with(2, "  const %c: i32[2] = [1.0, 2]"), 2, "expected an integer in i32 data"),
    (_with(2, "  const %c: bool[1] = [1]"), 2, "expected true or false"),
    (_with(2, "  const %c: u8[1] = [300]"), 2, "does not fit"),
    (_with(2, "  const %c: f32[L] = [1.0]"), 2, "needs a static shape"),
    (_with(3, "  return %y, %q"), 3, "value %q is not defined"),
    (_with(4, "} extra"), 4, "expected the end of the text"),
    (_with(4, ""), 5, r"expected '\}' after the return statement"),
    (_with(3, ""), 4, "expected a statement"),
    (_with(1, "graph g(%x: f32[L, 4]) {"), 1, "expected the graph's name"),
    (_with(1, "grph @g(%x: f32[L, 4]) {"), 1, "expected 'graph'"),
    (_with(2, "  %y: f32[L, 4] = relu(%x) @x"), 2, "node name @x is already used"),
])
def test_malformed_text_gives_a_located_parse_error(text, line, message):
    with pytest.raises(ParseError, match=message) as info:
        parse_graph(text)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"line {line}, column {info.value.column}: ")


def test_parse_error_points_at_the_fault():
    with pytest.raises(ParseError) as info:
        parse_graph(_with(2, "  %y: f32[L, 4] = frobnicate(%x)"))
    assert info.value.column == 19
    assert str(info.value).endswith("  %y: f32[L, 4] = frobnicate(%x)\n" + " " * 4 + " " * 18 + "^")


def test_parser_never_evaluates_text(tmp_path):
    marker = tmp_path / "pwned"
    for payload in [f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')"]:
        for text in [_with(2, f"  %y: f32[{payload}, 4] = relu(%x)"),
                     _with(2, f"  %y: f32[L, 4] = softmax(%x) {{axis = size({payload})}}")]:
            with pytest.raises(ParseError):
                parse_graph(text)
    assert not marker.exists()


# -- save / load --------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    g = Graph("saved")
    x = g.add_input("x", "f32", ("L", 64))
    w = g.add_constant("w", rng.standard_normal((32, 64)).astype(np.float32))
    ids = g.add_constant("ids", np.array([3, 1], np.int64))
    b = g.add_constant("b", rng.standard_normal(32).astype(np.float32))
    y = O.linear(x, w, b)
    g.set_outputs(O.softmax(y, axis=-1), O.cast(ids, dtype=DType.float32))
    path = tmp_path / "model.chunkc"
    chunkc.save(g, path)
    assert (tmp_path / "model.chunkc.npz").exists()
    with np.load(tmp_path / "model.chunkc.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["b", "ids", "w"]
    back = chunkc.load(path)
    chunkc.verify(back)
    assert_same_graph(back, g)
    xs = rng.standard_normal((5, 64)).astype(np.float32)
    for a, c in zip(chunkc.interpret(g, xs), chunkc.interpret(back, xs)):
        np.testing.assert_array_equal(a, c)
    assert print_graph(back) == print_graph(g)


def test_load_without_weights_file_is_an_error(tmp_path):
    g = Graph("g")
    g.add_constant("w", np.zeros(40, np.float32))
    chunkc.save(g, tmp_path / "g.txt")
    (tmp_path / "g.txt.npz").unlink()
    with pytest.raises(IRError, match=r"g.txt.npz is missing"):
        chunkc.load(tmp_path / "g.txt")


@pytest.mark.parametrize("short, wide", [("bf16", np.float32), ("f8e4m3fn", np.float32), ("f8e5m2", np.float32),
                                         ("f4e2m1fn", np.float32), ("i4", np.int8), ("u4", np.uint8),
                                         ("i2", np.int8), ("u2", np.uint8)])
def test_ml_dtypes_constants_are_stored_widened(tmp_path, short, wide):
    dt = chunkc.ir.dtype(short)
    data = (np.arange(40, dtype=np.float32) / 7 - 1).astype(dt.numpy)
    g = Graph("bf")
    c = g.add_constant("c", data)
    g.set_outputs(O.cast(c, dtype=DType.float32))
    chunkc.save(g, tmp_path / "bf")
    assert "constants stored widened (f32, i8 or u8) in the .npz: %c" in (tmp_path / "bf").read_text()
    with np.load(tmp_path / "bf.npz") as npz:
        assert npz["c"].dtype == wide
    back = chunkc.load(tmp_path / "bf")
    assert back.constants[0].data.dtype == data.dtype
    assert back.constants[0].data.tobytes() == data.tobytes()
    chunkc.verify(back)
    small = Graph("small")  # a small constant prints its data inline, which parses back exactly
    small.set_outputs(O.cast(small.add_constant("c", data[:12]), dtype=DType.float32))
    assert chunkc.parse_graph(chunkc.print_graph(small)).constants[0].data.tobytes() == data[:12].tobytes()


@pytest.mark.skipif(not has_op("split"), reason="split is not registered yet")
def test_multi_output_nodes_round_trip():
    g = Graph("s")
    x = g.add_input("x", "f32", ("L", 6))
    a, b = O.split(x, sizes=(2, 4), axis=1)
    g.set_outputs(b, a)
    text = print_graph(g)
    assert "%split_0: f32[L, 2], %split_1: f32[L, 4] = split(%x)" in text and text.count("@split") == 1
    back = parse_graph(text)
    assert_same_graph(back, g)
    assert print_graph(back) == text


_PIECES = ["%", "@", "(", ")", "[", "]", "{", "}", ",", ":", "=", "-", "*", "//", "%x", "f32", "size(", "1", "1.5",
           '"', "\n", " ", "const", "return", "nan", "(1,)", "L", "0", "-1", "bool", "max(", "L//0", "#", "\\", "\u00e9"]


@settings(max_examples=60)
@given(random_graphs(max_nodes=6),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 5), st.sampled_from(_PIECES + [""])),
                min_size=1, max_size=3))
def test_mangled_text_parses_or_raises_parse_error(case, edits):
    """Whatever the damage, the parser either builds a graph or raises ParseError."""
    text = print_graph(case.graph)
    for pos, length, piece in edits:
        p = pos % (len(text) + 1)
        text = text[:p] + piece + text[p + length:]
    try:
        g = parse_graph(text)
    except ParseError as exc:
        assert exc.line >= 1 and exc.column >= 1
    else:
        assert print_graph(parse_graph(print_graph(g))) == print_graph(g)
