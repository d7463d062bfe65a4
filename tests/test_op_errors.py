"""Malformed IR is refused when a node is built, with a message that names the op,
the input at fault and the sizes involved (and says what would fix it)."""

from __future__ import annotations

import re

import pytest

from chunkc.errors import IRError
from chunkc.ir import Graph
from chunkc.ir.ops.opaque import parse_type


def node(op: str, *types: str, **attrs):
    """Build one ``op`` node on graph inputs of the given types ('f32[2, 3]')."""
    g = Graph("errors")
    ins = []
    for i, text in enumerate(types):
        t = parse_type(text)
        ins.append(g.add_input(f"x{i}", t.dtype, t.shape))
    return g.add_node(op, ins, attrs)


# (case id, op, input types, attributes, fragments the message must hold)
CASES = [
    # wrong rank
    ("linear weight rank", "linear", ["f32[2, 8]", "f32[4, 8, 1]"], {},
     ["op linear", "weight (input 1)", "rank 2", "f32[4, 8, 1]"]),
    ("bmm rank", "bmm", ["f32[3, 4]", "f32[2, 4, 5]"], {}, ["op bmm", "input 0", "rank 3", "f32[3, 4]"]),
    ("conv input rank", "conv", ["f32[3, 8]", "f32[4, 3, 3]"], {}, ["op conv", "input 0", "[N, C, *spatial]", "f32[3, 8]"]),
    ("conv weight rank", "conv", ["f32[1, 3, 8, 8]", "f32[4, 3, 3]"], {},
     ["op conv", "weight (input 1)", "f32[4, 3, 3]", "rank of input 0", "f32[1, 3, 8, 8]"]),
    ("triu rank", "triu", ["f32[5]"], {}, ["op triu", "rank >= 2", "f32[5]"]),
    ("embedding weight rank", "embedding", ["f32[10]", "i64[3]"], {}, ["op embedding", "weight (input 0)", "f32[10]"]),
    ("sdpa rank", "scaled_dot_product_attention", ["f32[4]", "f32[3, 4]", "f32[3, 4]"], {},
     ["op scaled_dot_product_attention", "q (input 0)", "rank >= 2", "f32[4]"]),
    ("gather rank", "gather", ["f32[3, 4]", "i64[3]"], {"axis": 0}, ["op gather", "index (input 1)", "i64[3]", "f32[3, 4]"]),
    # mismatched sizes
    ("matmul contraction", "matmul", ["f32[2, 3]", "f32[4, 5]"], {}, ["op matmul", "contracted", "[2, 3]", "[4, 5]"]),
    ("broadcast", "add", ["f32[2, 3]", "f32[4, 3]"], {}, ["op add", "cannot broadcast", "[2, 3]", "[4, 3]", "2 and 4"]),
    ("concat sizes", "concat", ["f32[2, 3]", "f32[4, 5]"], {"axis": 0},
     ["op concat", "input 1 f32[4, 5]", "input 0 f32[2, 3]", "axis 1", "5 != 3"]),
    ("stack shapes", "stack", ["f32[2, 3]", "f32[2, 4]"], {"axis": 0}, ["op stack", "input 1 f32[2, 4]", "axis 1"]),
    ("split sizes", "split", ["f32[6, 4]"], {"sizes": (2, 3), "axis": 0},
     ["op split", "add up to 5", "axis 0", "f32[6, 4]", "size 6"]),
    ("layer_norm weight", "layer_norm", ["f32[2, 8]", "f32[7]"], {},
     ["op layer_norm", "weight (input 1)", "shape [8]", "f32[7]"]),
    ("group_norm groups", "group_norm", ["f32[2, 6, 5]"], {"num_groups": 4},
     ["op group_norm", "6 channels", "f32[2, 6, 5]", "4 groups"]),
    ("batch_norm stats", "batch_norm", ["f32[2, 4, 5]", "f32[4]", "f32[3]"], {},
     ["op batch_norm", "running_var (input 2)", "shape [4]", "f32[3]"]),
    ("conv channels", "conv", ["f32[1, 4, 8, 8]", "f32[6, 3, 3, 3]"], {},
     ["op conv", "f32[6, 3, 3, 3]", "3 input channels", "f32[1, 4, 8, 8]"]),
    ("conv groups", "conv", ["f32[1, 4, 8, 8]", "f32[6, 2, 3, 3]"], {"groups": 4},
     ["op conv", "groups=4", "output channels 6"]),
    ("conv bias", "conv", ["f32[1, 3, 8]", "f32[4, 3, 3]", "f32[5]"], {}, ["op conv", "bias (input 2)", "[4]", "f32[5]"]),
    ("conv too small", "conv", ["f32[1, 3, 2]", "f32[4, 3, 5]"], {},
     ["op conv", "spatial axis 0 of size 2", "kernel's extent 5", "f32[1, 3, 2]"]),
    ("sdpa embedding", "scaled_dot_product_attention", ["f32[2, 5, 8]", "f32[2, 6, 4]", "f32[2, 6, 4]"], {},
     ["op scaled_dot_product_attention", "f32[2, 5, 8]", "f32[2, 6, 4]", "8 != 4"]),
    ("sdpa mask shape", "scaled_dot_product_attention", ["f32[2, 5, 8]", "f32[2, 6, 8]", "f32[2, 6, 8]", "bool[5, 7]"], {},
     ["op scaled_dot_product_attention", "mask (input 3)", "bool[5, 7]"]),
    ("gather index larger", "gather", ["f32[3, 4]", "i64[5, 4]"], {"axis": 1},
     ["op gather", "i64[5, 4]", "f32[3, 4]", "axis 0", "5 > 3"]),
    ("reshape count", "reshape", ["f32[2, 3]"], {"shape": (4, 2)}, ["op reshape", "f32[2, 3]", "[4, 2]"]),
    ("expand", "expand", ["f32[3, 2]"], {"shape": (3, 4)}, ["op expand", "f32[3, 2]", "[3, 4]", "size 2 is not 1"]),
    ("masked_fill mask", "masked_fill", ["f32[3]", "bool[2, 3]"], {"value": 0.0},
     ["op masked_fill", "mask", "bool[2, 3]", "f32[3]"]),
    # axis out of range
    ("softmax axis", "softmax", ["f32[2, 3, 4]"], {"axis": 3}, ["op softmax", "axis 3", "rank 3"]),
    ("concat axis", "concat", ["f32[2, 3]", "f32[2, 3]"], {"axis": -3}, ["op concat", "axis -3", "rank 2"]),
    ("take axis", "take", ["f32[2, 3]", "i64[4]"], {"axis": 2}, ["op take", "axis 2", "rank 2"]),
    ("sum axes", "sum", ["f32[2, 3]"], {"axes": (0, 5)}, ["op sum", "axis 5", "rank 2"]),
    ("repeated axes", "amax", ["f32[2, 3]"], {"axes": (1, -1)}, ["op amax", "repeated axis"]),
    ("unsqueeze axis", "unsqueeze", ["f32[2, 3]"], {"axis": 4}, ["op unsqueeze", "axis 4", "rank 3"]),
    ("topk axis", "topk", ["f32[2, 3]"], {"k": 1, "axis": 2}, ["op topk", "axis 2", "rank 2"]),
    ("permute dims", "permute", ["f32[2, 3, 4]"], {"dims": (0, 0, 1)}, ["op permute", "not a permutation", "f32[2, 3, 4]"]),
    ("layer_norm num_axes", "layer_norm", ["f32[2, 8]"], {"num_axes": 3}, ["op layer_norm", "num_axes", "[1, 2]", "f32[2, 8]"]),
    ("topk k", "topk", ["f32[2, 3]"], {"k": 4}, ["op topk", "k=4", "axis 1", "f32[2, 3]", "size 3"]),
    # dtypes
    ("unknown dtype cast", "cast", ["f32[2]"], {"dtype": "f33"}, ["op cast", "unknown dtype 'f33'", "f16"]),
    ("unknown dtype full", "full", [], {"shape": (2,), "value": 1.0, "dtype": "float8"}, ["op full", "unknown dtype 'float8'"]),
    ("unknown dtype arange", "arange", [], {"end": 4, "dtype": "int128"}, ["op arange", "unknown dtype 'int128'"]),
    ("float-only input", "exp", ["i64[3]"], {}, ["op exp", "floating point", "i64[3]"]),
    ("integer indices", "take", ["f32[5, 2]", "f32[3]"], {"axis": 0}, ["op take", "indices (input 1)", "integers", "f32[3]"]),
    ("integer ids", "embedding", ["f32[5, 2]", "f32[3]"], {}, ["op embedding", "ids (input 1)", "f32[3]"]),
    ("conv integer input", "conv", ["i64[1, 3, 8]", "f32[4, 3, 3]"], {}, ["op conv", "input 0", "floating point", "i64[1, 3, 8]"]),
    # non-bool masks
    ("where condition", "where", ["f32[3]", "f32[3]", "f32[3]"], {}, ["op where", "condition (input 0)", "bool", "f32[3]"]),
    ("masked_fill non-bool", "masked_fill", ["f32[3]", "f32[3]"], {"value": 1.0}, ["op masked_fill", "mask (input 1)", "bool", "f32[3]"]),
    ("sdpa integer mask", "scaled_dot_product_attention", ["f32[5, 8]", "f32[6, 8]", "f32[6, 8]", "i64[5, 6]"], {},
     ["op scaled_dot_product_attention", "mask (input 3)", "bool or floating point", "i64[5, 6]"]),
    ("sdpa mask and causal", "scaled_dot_product_attention", ["f32[5, 8]", "f32[6, 8]", "f32[6, 8]", "bool[5, 6]"],
     {"is_causal": True}, ["op scaled_dot_product_attention", "either a mask or is_causal"]),
    # attribute values
    ("conv padding format", "conv", ["f32[1, 3, 8, 8]", "f32[4, 3, 3, 3]"], {"padding": (1, 1)},
     ["op conv", "padding", "2 (begin, end) pairs", "(1, 1)"]),
    ("conv stride length", "conv", ["f32[1, 3, 8, 8]", "f32[4, 3, 3, 3]"], {"stride": (2,)},
     ["op conv", "stride", "tuple of 2 ints >= 1", "(2,)"]),
    ("pool padding", "max_pool", ["f32[1, 3, 8, 8]"], {"kernel": (2, 2), "padding": ((2, 2), (0, 0))},
     ["op max_pool", "padding (2, 2)", "spatial axis 0", "half"]),
    ("pool kernel", "avg_pool", ["f32[1, 3, 8, 8]"], {"kernel": 2}, ["op avg_pool", "kernel", "tuple", "2"]),
    ("conv_transpose output_padding", "conv_transpose", ["f32[1, 3, 4]", "f32[3, 2, 3]"], {"stride": (2,), "output_padding": (2,)},
     ["op conv_transpose", "output_padding (2,)", "smaller than stride"]),
    ("interpolate mode", "interpolate", ["f32[1, 3, 8]"], {"size": (16,), "mode": "cubic"},
     ["op interpolate", "mode", "'nearest'", "'cubic'"]),
    ("interpolate align_corners", "interpolate", ["f32[1, 3, 8]"], {"size": (16,), "align_corners": True},
     ["op interpolate", "align_corners=True", "'linear'"]),
    ("pad pairs", "pad", ["f32[2, 3]"], {"pads": ((1, 1),)}, ["op pad", "pads", "2 (begin, end) pairs"]),
    ("pad reflect too far", "pad", ["f32[2, 3]"], {"pads": ((0, 0), (3, 0)), "mode": "reflect"},
     ["op pad", "reflect", "(3, 0)", "axis 1", "f32[2, 3]", "at most 2"]),
    ("arange step", "arange", [], {"end": 4, "step": 0}, ["op arange", "step must not be 0"]),
    ("reshape float size", "reshape", ["f32[4]"], {"shape": (1.5,)}, ["op reshape", "not float 1.5"]),
    ("gelu approximate", "gelu", ["f32[3]"], {"approximate": "fast"}, ["op gelu", "approximate", "'tanh'", "'fast'"]),
    ("einsum equation", "einsum", ["f32[2, 3]"], {"equation": "ij->k"}, ["op einsum", "output letter 'k'"]),
    ("einsum rank", "einsum", ["f32[2, 3]"], {"equation": "ijk->ij"}, ["op einsum", "operand 0 f32[2, 3]", "rank 2", "'ijk'"]),
    ("opaque target", "opaque", ["f32[2]"], {"target": "os.system", "result_types": ("f32[2]",)},
     ["op opaque", "target 'os.system'", "namespace::name"]),
    ("opaque code in target", "opaque", [], {"target": "aten::foo;import os", "result_types": ("f32[2]",)},
     ["op opaque", "aten::foo;import os"]),
    ("opaque result type", "opaque", [], {"target": "aten::foo.default", "result_types": ("f32(2)",)},
     ["op opaque", "result type 'f32(2)'", "dtype[size, ...]"]),
    ("opaque unsafe size", "opaque", [], {"target": "aten::foo.default", "result_types": ("f32[__import__('os')]",)},
     ["op opaque", "bad size expression"]),
    ("roll axes", "roll", ["f32[2, 3]"], {"shifts": (1, 2), "axes": (0,)}, ["op roll", "axes (0,)", "shifts (1, 2)"]),
    ("tile repeats", "tile", ["f32[2, 3]"], {"repeats": (2, -1)}, ["op tile", "repeats", ">= 0", "(2, -1)"]),
    ("softplus beta", "softplus", ["f32[3]"], {"beta": -1.0}, ["op softplus", "beta must be > 0", "-1.0"]),
]


@pytest.mark.parametrize("op,types,attrs,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_node_is_refused(op, types, attrs, fragments):
    with pytest.raises(IRError) as info:
        node(op, *types, **attrs)
    message = str(info.value)
    assert message.startswith("node "), message  # the node being built is named first
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


# -- arity and attributes: checked by the registry for every op -------------------------------------------


@pytest.mark.parametrize("op,types,want", [
    ("add", ["f32[2]"], "takes 2 inputs, got 1"),
    ("layer_norm", ["f32[2, 4]"] * 4, "takes 1 to 3 inputs, got 4"),
    ("scaled_dot_product_attention", ["f32[2, 4]"] * 2, "takes 3 to 4 inputs, got 2"),
    ("arange", ["f32[2]"], "takes 0 inputs, got 1"),
    ("conv", ["f32[1, 3, 8]"], "takes 2 to 3 inputs, got 1"),
])
def test_wrong_number_of_inputs(op, types, want):
    with pytest.raises(IRError, match=re.escape(f"op {op}")) as info:
        node(op, *types, **({"end": 3} if op == "arange" else {}))
    assert want in str(info.value)


def test_unknown_attribute_is_named_with_the_known_ones():
    with pytest.raises(IRError) as info:
        node("softmax", "f32[2, 3]", dim=1)
    message = str(info.value)
    assert "op softmax" in message and "unknown attribute(s) ['dim']" in message and "known: ['axis']" in message


def test_missing_required_attribute_is_named():
    for op, types, attr in (("concat", ["f32[2]", "f32[2]"], "axis"), ("reshape", ["f32[2]"], "shape"),
                            ("group_norm", ["f32[2, 4, 3]"], "num_groups"), ("max_pool", ["f32[1, 2, 4]"], "kernel"),
                            ("opaque", [], "target")):
        with pytest.raises(IRError) as info:
            node(op, *types)
        assert f"op {op}" in str(info.value) and f"missing required attribute {attr!r}" in str(info.value)


@pytest.mark.parametrize("op,types,attrs,want", [
    ("arange", [], {"end": "L*"}, "op arange (node arange): attribute end: bad size expression 'L*'"),
    ("reshape", ["f32[4]"], {"shape": ("L", object())}, "op reshape (node reshape): attribute shape: a size must be"),
    ("slice", ["f32[4]"], {"axis": 0, "start": True}, "op slice (node slice): attribute start: a size must be"),
])
def test_bad_size_attribute_is_named(op, types, attrs, want):
    with pytest.raises(IRError) as info:
        node(op, *types, **attrs)
    assert want in str(info.value)


def test_unknown_op_suggests_opaque():
    with pytest.raises(IRError, match="unknown op 'frobnicate'.*opaque"):
        node("frobnicate", "f32[2]")


def test_failed_node_leaves_the_graph_unchanged():
    g = Graph("g")
    x = g.add_input("x", "f32", (2, 3))
    with pytest.raises(IRError):
        g.add_node("softmax", [x], {"axis": 5})
    assert g.nodes == []
    assert g.add_node("softmax", [x], {"axis": 1}).name == "softmax"  # the name was not used up


def test_symbolic_sizes_are_checked_too():
    g = Graph("g")
    q = g.add_input("q", "f32", ("B", "L", 64))
    k = g.add_input("k", "f32", ("B", "S", 32))
    with pytest.raises(IRError, match=r"q f32\[B, L, 64\] and k f32\[B, S, 32\]"):
        g.add_node("scaled_dot_product_attention", [q, k, k])
    x = g.add_input("x", "f32", ("B", "L"))
    y = g.add_input("y", "f32", ("B", "S"))
    with pytest.raises(IRError, match="cannot broadcast.*L and S"):
        g.add_node("add", [x, y])
    with pytest.raises(IRError, match="ceil_mode with a symbolic spatial size"):
        g.add_node("max_pool", [g.add_input("img", "f32", (1, 3, "H"))], {"kernel": (2,), "ceil_mode": True})


# -- a record's PyTorch template is checked when the record is built --------------------------


def _record(torch, attrs=None, num_inputs=(1, 1)):
    from chunkc.ir.ops.elementwise import _bcast_dims
    from chunkc.ir.registry import OpDef
    return OpDef(name="my_op", infer=lambda ins, a: (ins[0],), dims=_bcast_dims, reference=None,
                 attrs=attrs or {}, num_inputs=num_inputs, torch=torch)


@pytest.mark.parametrize("template, attrs, fragments", [
    ("torch.foo({0}, {alpha})", {}, ["op my_op", "{alpha} is neither an input nor an attribute", "{0}, {1}..."]),
    ("torch.foo({1})", {}, ["op my_op", "uses input 1", "at most 1 input"]),
    ("torch.foo({0!r})", {}, ["op my_op", "{0} has a conversion or format spec"]),
    ("torch.foo({0.real})", {}, ["op my_op", "{0.real} is neither"]),
    ("torch.foo({0)", {}, ["op my_op", "malformed"]),
    ("torch.zeros({out_shape})", {"out_shape": 1}, ["op my_op", "attribute 'out_shape' hides the template field"]),
])
def test_bad_torch_templates_are_refused(template, attrs, fragments):
    with pytest.raises(IRError) as info:
        _record(template, attrs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_torch_lowering_must_be_a_template_or_a_function():
    with pytest.raises(IRError, match="op my_op: torch lowering must be a template string, a function or ON_HOST, got int"):
        _record(3)
    assert _record("F.gelu({0}, approximate={alpha})", {"alpha": "tanh"}).torch.startswith("F.gelu")
