"""Hostile and broken ONNX files: each gets a clear error naming the file or node at fault,
nothing crashes, and no text from the file reaches generated source unsanitized."""

from __future__ import annotations

import keyword
import re

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper

import chunkc
from chunkc.backends import emit_source
from chunkc.errors import ChunkcError, UnsupportedOpError
from frontends.onnx import from_onnx
from onnx_helpers import F32, model, vi

EVIL = "\"; import os; os.system('x') #"
EVIL_LINES = "a'b\"c\nimport os\nos.system('rm -rf /')\n"
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _relu_model():
    return model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [vi("x", F32, ["n", 4])],
                 [vi("y", F32, ["n", 4])])


def _assert_identifiers(graph):
    names = [v.name for v in graph.values()] + [n.name for n in graph.nodes] + sorted(graph.symbols())
    for name in names:
        assert IDENT.match(name) and not keyword.iskeyword(name), name


# -- files that are not ONNX models ----------------------------------------------------------------


def test_truncated_protobuf_names_the_file(tmp_path):
    data = _relu_model().SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ChunkcError, match=r"truncated\.onnx.*(not a valid ONNX protobuf|does not hold)"):
        from_onnx(path)


@pytest.mark.parametrize("content", [b"\xff" * 64, b"#!/bin/sh\nrm -rf /\n", bytes(range(256)) * 4],
                         ids=["ff", "script", "bytes"])
def test_corrupt_files_name_the_file(tmp_path, content):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(content)
    with pytest.raises(ChunkcError, match=r"corrupt\.onnx"):
        from_onnx(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ChunkcError, match=r"empty\.onnx.* is empty"):
        from_onnx(empty)
    with pytest.raises(ChunkcError, match=r"cannot read ONNX file .*missing\.onnx"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="ModelProto, bytes or a path"):
        from_onnx(42)


# -- text from the file --------------------------------------------------------------------------------


def _evil_model():
    nodes = [
        helper.make_node("Relu", [EVIL], [EVIL + "out"], name=EVIL),
        helper.make_node("Mul", [EVIL + "out", EVIL_LINES], ["lambda"], name=EVIL_LINES,
                         doc_string=EVIL, note=EVIL_LINES),
        helper.make_node("Softmax", ["lambda"], ["import"], name="class", axis=-1),
    ]
    return model(nodes, [vi(EVIL, F32, ["__import__('os').system('x')", "seq len", 4])],
                 [vi("import", F32, ["__import__('os').system('x')", "seq len", 4])],
                 [(EVIL_LINES, np.float32(2.0))], name=EVIL)


def test_the_checker_refusal_names_the_node_on_one_line():
    with pytest.raises(ChunkcError) as err:
        from_onnx(_evil_model())  # "note" is no attribute of Mul
    text = str(err.value)
    assert "ONNX checker refuses the model" in text and "Unrecognized attribute: note" in text
    assert "\n" not in text


def test_hostile_names_and_attributes_become_identifiers():
    g = from_onnx(_evil_model(), check=False)
    _assert_identifiers(g)
    assert g.nodes[0].name.startswith("v___import_os__os_system__x___")  # the quoted code, now one identifier
    assert g.nodes[2].name == "vclass"  # a keyword is not an identifier
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(chunkc.interpret(g, x)[0], _softmax(2 * np.maximum(x, 0)), rtol=1e-6)


def _softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_no_text_from_the_file_reaches_generated_source(backend):
    g = from_onnx(_evil_model(), check=False)
    printed = chunkc.print_graph(g)
    # the text form keeps the ONNX node names and doc strings only as JSON strings in #@ comments
    texts = [emit_source(g, backend=backend), "\n".join(line.split("  #@ ")[0] for line in printed.splitlines())]
    for text in texts:
        for fragment in ("os.system", "import os", "__import__(", "rm -rf", "'x'", "a'b", "seq len"):
            assert fragment not in text
    parsed = chunkc.parse_graph(printed)
    assert [n.source for n in parsed.nodes] == [n.source for n in g.nodes]
    assert g.nodes[0].source.onnx_node == EVIL and g.nodes[1].source.doc == EVIL
    fn = chunkc.compile(g, backend=backend)
    x = np.ones((1, 2, 4), np.float32)
    out = fn(x if backend == "numpy" else __import__("torch").from_numpy(x))
    np.testing.assert_allclose(np.asarray(out), np.full((1, 2, 4), 0.25, np.float32), rtol=1e-6)


def test_code_in_an_attribute_is_refused_with_the_node_named():
    m = model([helper.make_node("Resize", ["x", "", "s"], ["y"], name=EVIL, mode="__import__('os').system('x')")],
              [vi("x", F32, [1, 1, 2, 2])], [vi("y", F32, [1, 1, 4, 4])], [("s", np.ones(4, np.float32) * 2)],
              opset=19)
    with pytest.raises(ChunkcError) as err:
        from_onnx(m, check=False)
    text = str(err.value)
    assert "(Resize)" in text and "os.system" in text  # named, and quoted as a Python repr
    assert "\n" not in text
    eq = model([helper.make_node("Einsum", ["a"], ["y"], name="e", equation="ij->i;__import__('os')")],
               [vi("a", F32, [2, 2])], [vi("y", F32, [2])])
    with pytest.raises(ChunkcError, match=r"ONNX node 'e' \(Einsum\)"):
        from_onnx(eq, check=False)


# -- broken graphs -------------------------------------------------------------------------------------


def test_a_cycle_is_refused_naming_its_nodes():
    m = model([helper.make_node("Relu", ["x"], ["a"], name="start"),
               helper.make_node("Add", ["a", "c"], ["b"], name="loop_add"),
               helper.make_node("Neg", ["b"], ["c"], name="loop_neg"),
               helper.make_node("Relu", ["b"], ["y"], name="end")],
              [vi("x", F32, [2])], [vi("y", F32, [2])])
    with pytest.raises(ChunkcError, match=r"cycle through nodes '(loop_add|loop_neg)' -> .*'loop_(add|neg)'"):
        from_onnx(m)


def test_a_missing_initializer_is_named_with_its_reader():
    m = model([helper.make_node("MatMul", ["x", "weight_7"], ["y"], name="proj")],
              [vi("x", F32, [2, 4])], [vi("y", F32, [2, 3])])
    with pytest.raises(ChunkcError, match=r"ONNX node 'proj' \(MatMul\) reads 'weight_7', which no node, graph "
                                         r"input or initializer defines \(a missing initializer\?\)"):
        from_onnx(m)


def test_a_name_defined_twice_is_refused():
    m = model([helper.make_node("Relu", ["x"], ["t"], name="first"), helper.make_node("Neg", ["x"], ["t"], name="second")],
              [vi("x", F32, [2])], [vi("t", F32, [2])])
    with pytest.raises(ChunkcError, match=r"ONNX node 'second' \(Neg\) writes 't', which ONNX node 'first'"):
        from_onnx(m)


def test_unknown_ops_are_listed_with_counts_and_first_nodes():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Frob", ["a"], ["b"], name="frob_1", domain="evil.domain"),
             helper.make_node("Frob", ["b"], ["c"], name="frob_2", domain="evil.domain"),
             helper.make_node("Zap", ["c"], ["y"], name=EVIL, domain="evil.domain")]
    m = model(nodes, [vi("x", F32, [2])], [vi("y", F32, [2])], value_info=[vi(n, F32, [2]) for n in "bc"],
              extra_opsets=[("evil.domain", 1)])
    with pytest.raises(UnsupportedOpError) as err:
        from_onnx(m, opaque_unknown=False)
    text = str(err.value)
    assert "2 unsupported op type(s)" in text
    assert "'evil.domain::Frob' x2 (first: node 'frob_1')" in text
    assert "'evil.domain::Zap' x1" in text and "opaque_unknown=True" in text


def test_an_undeclared_domain_is_listed_too():
    m = model([helper.make_node("Frob", ["x"], ["y"], name="frob", domain="undeclared")],
              [vi("x", F32, [2])], [vi("y", F32, [2])])
    with pytest.raises(UnsupportedOpError, match=r"1 unsupported op type\(s\): 'undeclared::Frob' x1 "
                                                 r"\(first: node 'frob'\)"):
        from_onnx(m, opaque_unknown=False)
    with pytest.raises(UnsupportedOpError, match=r"ONNX node 'frob' \(undeclared::Frob\) uses domain 'undeclared', "
                                                 r"which the model does not import"):
        from_onnx(m)


def test_opaque_targets_are_sanitized():
    m = model([helper.make_node("Bad Op(); x", ["x"], ["y"], name="n", domain="evil.domain")],
              [vi("x", F32, [2])], [vi("y", F32, [2])], extra_opsets=[("evil.domain", 1)])
    g = from_onnx(m, opaque_unknown=True, check=False)
    assert g.nodes[0].attrs["target"] == "onnx_evil_domain::Bad_Op____x"
    assert "Bad Op" not in emit_source(g, backend="numpy") and "Bad Op" not in chunkc.print_graph(g)


def _external_model(tmp_path, location="weights.bin"):
    """A model saved with its initializer in an external file; returns (path, weights)."""
    w = np.arange(4096, dtype=np.float32).reshape(64, 64) / 100
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", F32, ["n", 64])], [vi("y", F32, ["n", 64])],
              [("w", w)])
    onnx.save(m, str(tmp_path / "m.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return tmp_path / "m.onnx", w


def test_external_data_in_the_models_folder_loads(tmp_path):
    path, w = _external_model(tmp_path)
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].data_location == TensorProto.EXTERNAL
    g = from_onnx(path)
    x = np.ones((3, 64), np.float32)
    np.testing.assert_allclose(chunkc.interpret(g, x)[0], x @ w, rtol=1e-6)
    (tmp_path / "below" / "data").mkdir(parents=True)  # a file below the model's folder is fine too
    path, _ = _external_model(tmp_path / "below", location="data/w.bin")
    np.testing.assert_allclose(chunkc.interpret(from_onnx(path), x)[0], x @ w, rtol=1e-6)


def _with_location(tmp_path, location: str):
    path, _ = _external_model(tmp_path)
    m = onnx.load(str(path), load_external_data=False)
    entry = next(e for e in m.graph.initializer[0].external_data if e.key == "location")
    entry.value = location
    onnx.save(m, str(path))
    return path


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "sub/../../m.onnx", "..\\secret.bin", ""])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, location):
    path = _with_location(tmp_path, location)
    with pytest.raises(UnsupportedOpError, match=r"m\.onnx: tensor 'w' keeps its data in .*, which is not a file in "
                                                 r"the model's folder .*move the data file there"):
        from_onnx(path)


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(np.zeros(4096, np.float32).tobytes())
    (tmp_path / "model").mkdir()
    path = _with_location(tmp_path / "model", "link.bin")
    (tmp_path / "model" / "link.bin").symlink_to(outside / "w.bin")
    with pytest.raises(UnsupportedOpError, match="which is not a file in the model's folder"):
        from_onnx(path)


def test_external_data_needs_a_path_and_its_files(tmp_path):
    path, _ = _external_model(tmp_path)
    with pytest.raises(UnsupportedOpError, match=r"tensor 'w' keeps its data in an external file \('weights.bin'\), "
                                                 r"and a model given as a ModelProto or bytes has no folder"):
        from_onnx(onnx.load(str(path), load_external_data=False))
    (tmp_path / "weights.bin").write_bytes(b"\0" * 100)  # truncated
    with pytest.raises(ChunkcError, match=r"reads bytes 0\.\.16384 of 'weights.bin', which has 100 bytes"):
        from_onnx(path)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ChunkcError, match=r"keeps its data in 'weights.bin', which cannot be read"):
        from_onnx(path)


def test_undefined_graph_output_and_shapeless_input():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F32, [2])], [vi("nowhere", F32, [2])])
    with pytest.raises(ChunkcError, match=r"graph output 'nowhere' is defined by no node"):
        from_onnx(m)
    m = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F32, None)], [vi("y", F32, None)])
    with pytest.raises(UnsupportedOpError, match=r"graph input 'x' has no shape"):
        from_onnx(m, check=False)


def test_unsupported_element_types_are_named():
    m = model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", TensorProto.STRING, [2])],
              [vi("y", TensorProto.STRING, [2])])
    with pytest.raises(UnsupportedOpError, match=r"graph input 'x': element type STRING has no chunkc dtype"):
        from_onnx(m)


def test_malformed_node_inputs_name_the_node():
    m = model([helper.make_node("Concat", ["x", "z"], ["y"], name="cat", axis=7)],
              [vi("x", F32, [2]), vi("z", F32, [3])], [vi("y", F32, [5])])
    with pytest.raises(ChunkcError, match=r"ONNX node 'cat' \(Concat\).*axis 7 is out of range"):
        from_onnx(m, check=False)
