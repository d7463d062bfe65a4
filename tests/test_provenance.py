"""Node sources (chunkc.ir.source): the record, its text form, passes carrying it, messages in the
model's terms, the module-level Graphviz view and the IR diff. Graphs here are built by hand;
tests/test_provenance_models.py imports real models."""

from __future__ import annotations

from dataclasses import dataclass

import re
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

import chunkc
from chunkc import ops as O
from chunkc.backends import emit_source
from chunkc.cli import main as cli_main
from chunkc.ir.source import SourceInfo, comment_text, describe, format_source, parse_source, span
from chunkc.passes.manager import Pass, PassContext, register_pass
from chunkc.passes.rewrite import rebuild
from chunkc.passes.report import plan_report
from chunkc.viz.diff import align, diff_html, diff_ir
from chunkc.viz.dot import render_dot, to_dot
from chunkc.viz.grouping import index_arithmetic, module_levels
from frontends.provenance import Frame, choose_frame, composite_modules, parse_stack_trace, portable_path
from graphs import attention, layer_norm_by_hand
from onnx_helpers import F32, model, vi

MODEL_FILE = "mymodels/modeling_toy.py"


def stamp(g: chunkc.Graph, since: int, module: str, cls: str, line: int) -> None:
    """Give the nodes built since position ``since`` a source, as a frontend would."""
    for n in g.nodes[since:]:
        n.source = SourceInfo(module=module, module_class=cls, file=MODEL_FILE, line=line)


def toy_model(layers: int = 3, D: int = 32, H: int = 4) -> chunkc.Graph:
    """A causal transformer whose nodes carry sources: a mask built from positions, then blocks."""
    rng = np.random.default_rng(0)
    g = chunkc.Graph("toy")
    x = g.add_input("x", "f32", ("L", D))

    def W(*shape):
        return g.add_constant("w", (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32))

    start = len(g.nodes)
    pos = g.op("arange", start=0, end=chunkc.sym("L"))
    causal = O.le(O.unsqueeze(pos, axis=0), O.unsqueeze(pos, axis=1))  # key <= query
    mask = O.lt(O.cast(causal, dtype="i64"), 1)  # True where masked: integer and bool arithmetic only
    stamp(g, start, "model", "ToyModel", 10)
    for i in range(layers):
        start = len(g.nodes)
        h = layer_norm_by_hand(x)
        stamp(g, start, f"model.h.{i}.ln_1", "LayerNorm", 20)
        start = len(g.nodes)
        a = attention(g, h, W, "L", D, H, causal_mask=mask)
        stamp(g, start, f"model.h.{i}.attn", "Attention", 30 + i)
        start = len(g.nodes)
        x = x + a
        stamp(g, start, f"model.h.{i}", "Block", 40)
        start = len(g.nodes)
        m = O.linear(O.gelu(O.linear(layer_norm_by_hand(x), W(4 * D, D))), W(D, 4 * D))
        stamp(g, start, f"model.h.{i}.mlp", "MLP", 50)
        start = len(g.nodes)
        x = x + m
        stamp(g, start, f"model.h.{i}", "Block", 41)
    g.set_outputs(x)
    return g


# -- the record and its text form ------------------------------------------------------------------


RECORDS = [
    SourceInfo("model.h.2.attn", "GPT2Attention", "transformers/models/gpt2/modeling_gpt2.py", 231),
    SourceInfo(module_class="Root"),
    SourceInfo(module="onnx"),  # a keyword of the comment's syntax: quoted
    SourceInfo(module="a b/c", file="C:\\models\\my model.py", line=7),
    SourceInfo(file="f.py", line=0),
    SourceInfo(onnx_node="node \"x\" #1", doc="line one\nline two"),
    SourceInfo("model.h.0", "Block", "m.py", 3, onnx_node="Add_1", doc="d"),
]


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_source_comment_round_trips(record):
    assert parse_source(format_source(record)) == record


@given(st.builds(SourceInfo, module=st.text(max_size=40), module_class=st.text(max_size=20),
                 file=st.text(max_size=40), line=st.integers(0, 10**7), onnx_node=st.text(max_size=20),
                 doc=st.text(max_size=40)))
def test_any_record_round_trips_through_its_comment(record):
    text = format_source(record)
    assert "\n" not in text and "\r" not in text
    assert parse_source(text) == record


def test_source_text_is_cleaned_and_lines_checked():
    s = SourceInfo(module="a\nb\x00", onnx_node="n\r", doc="keep\nlines\x07")
    assert s.module == "a?b?" and s.onnx_node == "n?" and s.doc == "keep\nlines?"
    with pytest.raises(ValueError, match="line must be a non-negative int"):
        SourceInfo(file="f.py", line=-1)
    assert len(SourceInfo(module="m" * 5000).module) == 300
    assert SourceInfo(line=12).line == 0  # no file, no line


def test_where_and_describe():
    s = SourceInfo("model.h.2.attn", "GPT2Attention", "pkg/modeling_gpt2.py", 231)
    assert s.location == "modeling_gpt2.py:231"
    assert s.where() == "model.h.2.attn (GPT2Attention), modeling_gpt2.py:231"
    assert SourceInfo(onnx_node="n1").where() == 'ONNX node "n1"'
    g = chunkc.Graph("g")
    n = g.add_node("relu", [g.add_input("x", "f32", (2,))], source=s)
    assert describe(n) == "node relu (relu) in model.h.2.attn (GPT2Attention), modeling_gpt2.py:231"
    here = SourceInfo(file=__file__, line=_line("CODE_LINE_MARKER"))  # CODE_LINE_MARKER
    n.source = here
    assert describe(n).endswith("# CODE_LINE_MARKER`") and " at test_provenance.py:" in describe(n)
    n.source = None
    assert describe(n) == "node relu (relu)"
    with pytest.raises(chunkc.IRError, match="source must be a chunkc.ir.source.SourceInfo"):
        g.add_node("relu", [g.inputs[0]], source="model.h.0")


def _line(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, text in enumerate(f, 1) if f"# {marker}" in text and "_line(" in text)


def test_span_names_first_and_last_module_and_line_ranges():
    g = toy_model(layers=2)
    nodes = [n for n in g.nodes if n.source.module.startswith("model.h.0")]
    text = span(nodes)
    assert text.startswith("model.h.0.ln_1 → model.h.0 (4 modules); modeling_toy.py:20-50")


def test_text_form_round_trips_sources():
    g = toy_model(layers=2)
    text = chunkc.print_graph(g)
    assert f'#@ model.h.1.attn (Attention) "{MODEL_FILE}":31' in text
    parsed = chunkc.parse_graph(text)
    assert chunkc.print_graph(parsed) == text
    assert [n.source for n in parsed.nodes] == [n.source for n in g.nodes]


@pytest.mark.parametrize("text, message", [
    ('  %y: f32[L] = relu(%x)  #@ model.h.0 (Block "f.py":3\n', "line 2, column 46: expected ')' after the class"),
    ('  %y: f32[L] = relu(%x)  #@ "f.py":x\n', "line 2, column 36: expected a line number, found 'x'"),
    ('  %y: f32[L] = relu(%x)\n  #@ model.h.0\n', "must be on the line of the node it describes"),
    ('  #@ model.h.0\n  %y: f32[L] = relu(%x)\n', "must end the line of a node statement"),
    ('  %y: f32[L] = relu(%x)  #@ model doc="a" doc="b"\n', "unexpected 'doc'"),
])
def test_bad_source_comments_are_refused_with_the_position(text, message):
    src = "graph @g(%x: f32[L]) {\n" + text + "  return %y\n}\n"
    with pytest.raises(chunkc.ParseError, match=re.escape(message)):
        chunkc.parse_graph(src)


def test_plain_comments_still_ignored():
    g = chunkc.parse_graph("graph @g(%x: f32[L]) {\n  # a note\n  %y: f32[L] = relu(%x)  # not a source\n"
                           "  return %y\n}\n")
    assert g.nodes[0].source is None


# -- passes carry sources ------------------------------------------------------------------------------


def test_copy_reorder_and_rebuild_keep_sources():
    g = toy_model(layers=1)
    assert all(n.source for n in g.nodes)
    O.exp(g.inputs[0])  # dead: dead-code elimination rebuilds the graph
    want = {n.name: n.source for n in g.nodes}
    pruned = g.copy()
    assert pruned.dce() == 1
    for h in (g.copy(), g.reordered([n.name for n in g.nodes]), pruned):
        assert {n.name: n.source for n in h.nodes} == {n.name: want[n.name] for n in h.nodes}


def explicit_causal_mask(g: chunkc.Graph) -> chunkc.Graph:
    """An example rewrite: causal attention spelled with an explicit lower-triangular mask."""
    def rule(node, inputs, h):
        if node.op.name != "scaled_dot_product_attention" or not node.attrs["is_causal"]:
            return None
        shape = (inputs[0].shape[-2], inputs[1].shape[-2])
        ones = h.op("full", shape=shape, value=True, dtype="bool", name=f"{node.name}_ones")
        mask = h.op("tril", ones, name=f"{node.name}_causal")
        return h.add_node(node.op, [*inputs, mask], {**node.attrs, "is_causal": False}, name=node.name,
                          output_names=[o.name for o in node.outputs]).outputs
    return rebuild(g, rule)


def test_nodes_a_rewrite_creates_get_the_source_of_the_node_they_replace():
    g = chunkc.Graph("g")
    q, k, v = (g.add_input(n, "f32", (2, "L", 8)) for n in "qkv")
    sdpa = g.add_node("scaled_dot_product_attention", [q, k, v], {"is_causal": True},
                      source=SourceInfo("model.attn", "Attention", MODEL_FILE, 77))
    g.set_outputs(sdpa.outputs[0])
    h = explicit_causal_mask(g)
    assert [n.op.name for n in h.nodes] == ["full", "tril", "scaled_dot_product_attention"]
    assert all(n.source == sdpa.source for n in h.nodes)


def test_verifier_errors_name_the_module_and_line():
    g = toy_model(layers=1)
    node = next(n for n in g.nodes if n.source.module == "model.h.0.attn" and n.op.name == "softmax")
    node.attrs["axis"] = 5
    with pytest.raises(chunkc.IRError, match=r"node softmax \(softmax\) in model\.h\.0\.attn \(Attention\), "
                                             r"modeling_toy\.py:30: "):
        chunkc.verify(g)


# -- messages and generated code ---------------------------------------------------------------------------


def test_plan_report_names_modules_for_every_region():
    g = toy_model(layers=3)
    plan = chunkc.autochunk(g, 0.3, sizes={"L": 512}, progress=False)
    assert plan.regions
    report = plan_report(plan)
    regions = report.split("# region ")[1:]
    assert len(regions) == len(plan.regions)
    for text in regions:
        line = next(x for x in text.splitlines() if x.startswith("#   in the model: "))
        assert re.search(r"model\.h\.\d+\.\w+", line) and "modeling_toy.py:" in line


def test_infeasible_budget_names_module_and_source_line():
    g = toy_model(layers=1)
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(g, 1e-6, sizes={"L": 256}, progress=False)
    peak = g.node(info.value.peak_node)
    assert f"held at {describe(peak)}" in str(info.value)
    assert re.search(r"in model\.h\.0\.[a-z_0-9]+ \(\w+\), modeling_toy\.py:\d+", str(info.value))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_generated_code_names_each_nodes_module(backend):
    g = toy_model(layers=1)
    source = emit_source(g, backend=backend)
    softmax = next(line for line in source.splitlines() if "# softmax ->" in line)
    assert softmax.endswith(" in model.h.0.attn (Attention)")


def test_comment_text_keeps_only_safe_characters():
    g = chunkc.Graph("g")
    n = g.add_node("relu", [g.add_input("x", "f32", (2,))],
                   source=SourceInfo(module="a');__import__('os').system('rm -rf /')#\nx", module_class="C\nD"))
    text = comment_text(n)
    assert re.fullmatch(r"[A-Za-z0-9_. ()]+", text) and "(" not in text.split(" ")[0]
    assert comment_text(g.add_node("relu", [g.inputs[0]])) == ""


# -- the frame of the model's own code --------------------------------------------------------------------


TRACE = '''File "/home/u/run.py", line 9, in forward
    return self.model(x)
  File "/venv/lib/python3.11/site-packages/transformers/models/gpt2/modeling_gpt2.py", line 608, in forward
    hidden_states = block(
  File "/venv/lib/python3.11/site-packages/transformers/models/gpt2/modeling_gpt2.py", line 225, in forward
    attn_output = self.c_proj(attn_output)
  File "/venv/lib/python3.11/site-packages/transformers/pytorch_utils.py", line 120, in forward
    x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
  File "/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py", line 125, in forward
    return F.linear(input, self.weight, self.bias)'''
STACK = [("", "run.Wrapper"), ("model", "transformers.models.gpt2.modeling_gpt2.GPT2Model"),
         ("model.h.0", "transformers.models.gpt2.modeling_gpt2.GPT2Block"),
         ("model.h.0.attn", "transformers.models.gpt2.modeling_gpt2.GPT2Attention"),
         ("model.h.0.attn.c_proj", "transformers.pytorch_utils.Conv1D")]


def test_a_leaf_layer_is_placed_at_its_call_site_in_the_model_file():
    frames = parse_stack_trace(TRACE)
    assert [f.line for f in frames] == [9, 608, 225, 120, 125]
    composite = composite_modules(p for p, _ in STACK)
    assert composite == {"", "model", "model.h.0", "model.h.0.attn"}
    assert choose_frame(frames, STACK, composite).line == 225  # c_proj's call in GPT2Attention.forward


def test_frame_rules_fall_back_outward_then_to_user_code():
    frames = parse_stack_trace(TRACE)
    everything_composite = composite_modules(p for p, _ in STACK + [("model.h.0.attn.c_proj.inner", "x.Y")])
    assert choose_frame(frames, STACK, everything_composite).line == 120  # Conv1D's own file when it is not a leaf
    unknown = [("", "__main__.M")]
    assert choose_frame(frames, unknown, {""}).line == 120  # innermost frame outside torch
    torch_only = [Frame("/x/torch/nn/functional.py", 5, "linear")]
    assert choose_frame(torch_only, unknown, {""}).line == 5
    assert choose_frame([], unknown, {""}) is None


def test_paths_are_stored_from_the_package_down():
    assert portable_path("/venv/lib/python3.11/site-packages/transformers/x.py") == "transformers/x.py"
    assert portable_path("C:\\py\\Lib\\site-packages\\diffusers\\a.py") == "diffusers/a.py"
    assert portable_path("relative/file.py") == "relative/file.py"


# -- ONNX metadata ----------------------------------------------------------------------------------------


def _meta(node, scopes, classes, trace):
    for key, value in (("pkg.torch.onnx.name_scopes", repr(scopes)),
                       ("pkg.torch.onnx.class_hierarchy", repr(classes)),
                       ("pkg.torch.onnx.stack_trace", trace)):
        entry = node.metadata_props.add()
        entry.key, entry.value = key, value
    return node


def test_onnx_metadata_gives_module_and_line_and_bare_nodes_borrow_it():
    trace = ('File "/env/site-packages/mypkg/net.py", line 12, in forward\n    y = self.block(x)\n'
             '  File "/env/site-packages/mypkg/net.py", line 30, in forward\n    return torch.relu(x) * 2')
    relu = _meta(helper.make_node("Relu", ["x"], ["a"], name="node_relu"), ["", "block", "relu"],
                 ["mypkg.net.Net", "mypkg.net.Block", "aten.relu.default"], trace)
    bare = helper.make_node("Neg", ["a"], ["b"], name="optimizer_made")  # no metadata: borrows its reader's
    mul = _meta(helper.make_node("Mul", ["b", "two"], ["y"], name="node_mul"), ["", "block", "mul"],
                ["mypkg.net.Net", "mypkg.net.Block", "aten.mul.Tensor"], trace)
    m = model([relu, bare, mul], [vi("x", F32, ["n", 4])], [vi("y", F32, ["n", 4])],
              [("two", np.float32(2.0))])
    g = chunkc.from_onnx(m)
    sources = {n.source.onnx_node: n.source for n in g.nodes}
    assert sources["node_relu"] == SourceInfo("block", "Block", "mypkg/net.py", 30, onnx_node="node_relu")
    assert sources["optimizer_made"].location == "net.py:30" and sources["optimizer_made"].module == "block"
    assert chunkc.print_graph(chunkc.parse_graph(chunkc.print_graph(g))) == chunkc.print_graph(g)


def test_onnx_legacy_scope_names_give_the_module():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="/encoder/layer.0/attn/Relu")],
              [vi("x", F32, [2])], [vi("y", F32, [2])])
    (node,) = chunkc.from_onnx(m).nodes
    assert node.source.module == "encoder.layer.0.attn" and node.source.onnx_node == "/encoder/layer.0/attn/Relu"


def test_onnx_errors_name_the_module_and_line():
    trace = 'File "/env/site-packages/mypkg/net.py", line 44, in forward\n    return special(x)'
    node = _meta(helper.make_node("NoSuchOp", ["x"], ["y"], name="n0", domain="custom.domain"),
                 ["", "head", "n0"], ["mypkg.net.Net", "mypkg.net.Head", "custom.op"], trace)
    m = model([node], [vi("x", F32, [2])], [vi("y", F32, [2])], extra_opsets=[("custom.domain", 1)])
    with pytest.raises(chunkc.UnsupportedOpError, match=r"first: node 'n0' at head \(Head\), net\.py:44"):
        chunkc.from_onnx(m, check=False, opaque_unknown=False)


def test_hostile_onnx_metadata_stays_quoted_and_out_of_generated_code():
    evil = "x');__import__('os').system('rm -rf /')#\nimport os"
    relu = _meta(helper.make_node("Relu", ["x"], ["y"], name="r"), ["", evil, "relu"], ["a.B", evil, "aten.relu"],
                 f'File "{evil}.py", line 3, in forward\n    y = x')
    g = chunkc.from_onnx(model([relu], [vi("x", F32, [2])], [vi("y", F32, [2])]))
    source = emit_source(g, backend="numpy")
    for fragment in ("__import__(", "rm -rf", "os.system('", "\nimport os"):
        assert fragment not in source
    text = chunkc.print_graph(g)
    assert "\nimport os" not in text and chunkc.parse_graph(text).nodes[0].source == g.nodes[0].source
    assert "\nimport os" not in to_dot(g, depth=1) and "\nimport os" not in to_dot(g)


# -- the module view ----------------------------------------------------------------------------------------


def test_module_levels_keep_list_indices_with_their_list():
    assert module_levels("model.h.2.attn") == ("model", "h.2", "attn")
    assert module_levels("") == ()
    assert module_levels("0.attn") == ("0", "attn")


def test_index_arithmetic_is_what_no_activation_or_weight_reaches():
    g = toy_model(layers=1)
    index = index_arithmetic(g)
    assert {n.op.name for n in index} == {"arange", "unsqueeze", "le", "cast", "lt"}
    assert all(n.source.module == "model" for n in index)


def _dot_nodes(dot: str) -> list[str]:
    return re.findall(r'^\s*"([^"]+)" \[label=', dot, flags=re.M)


def test_depth_collapses_modules_and_folds_index_arithmetic():
    g = toy_model(layers=3)
    plan = chunkc.autochunk(g, 0.3, sizes={"L": 512}, progress=False)
    dot = to_dot(g, plan, depth=2)
    units = _dot_nodes(dot)
    boxes = re.findall(r'"m_\d+" \[label="([^"]+)"', dot)
    assert sorted(b.split("\\n")[0] for b in boxes) == [f"model.h.{i}" + " (Block)" for i in range(3)]
    per_layer = sum(1 for n in g.nodes if n.source.module.startswith("model.h.0"))
    assert f"{per_layer} nodes, peak " in boxes[0]
    assert any(re.search(r"\\nregions? \d", b) for b in boxes)
    folds = re.findall(r'"f_\d+" \[label="([^"]+)"', dot)
    # (the causal mask is rematerialized per layer by the plan: its copies fold in too)
    assert len(folds) == 1 and folds[0].startswith(f"index arithmetic\\n{len(index_arithmetic(plan.graph))} nodes")
    assert 'subgraph "cluster_model"' in dot
    # x, output, the three layers, the fold box: nothing else at depth 2
    assert len(units) == 6
    deeper = to_dot(g, plan, depth=3)
    assert 'subgraph "cluster_model.h.1"' in deeper and "model.h.1.attn (Attention)" in deeper
    assert len(_dot_nodes(deeper)) > len(units)


def test_every_unit_has_a_tooltip_with_its_source():
    g = toy_model(layers=1)
    dot = to_dot(g, sizes={"L": 64}, depth=3)
    for statement in re.findall(r'^\s*"[^"]+" \[label=.*$', dot, flags=re.M):
        assert 'tooltip="' in statement
    add = next(s for s in dot.splitlines() if s.strip().startswith('"n_add'))
    assert "modeling_toy.py:40" in add and "f32[L, 32] (8.0 KiB)" in add
    flat = to_dot(g, sizes={"L": 64})
    assert 'tooltip="' in flat and "modeling_toy.py:30" in flat


def test_depth_must_be_positive():
    with pytest.raises(chunkc.ChunkcError, match="depth must be a positive int"):
        to_dot(toy_model(layers=1), depth=0)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_module_view_renders_svg_with_tooltips(tmp_path):
    g = toy_model(layers=2)
    path = render_dot(to_dot(g, sizes={"L": 64}, depth=2), tmp_path / "toy.svg")
    svg = path.read_text()
    assert "<svg" in svg and "xlink:title=" in svg and "modeling_toy.py:" in svg


def test_cli_dot_depth(tmp_path, capsys):
    path = tmp_path / "toy.cir"
    chunkc.save(toy_model(layers=2), str(path))
    assert cli_main(["dot", str(path), "--budget", "30%", "--sizes", "L=512", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert '"m_0" [label="model.h.0 (Block)' in out and "index arithmetic" in out


# -- the IR diff ----------------------------------------------------------------------------------------------


def _sdpa_graph():
    g = chunkc.Graph("g")
    q, k, v = (g.add_input(n, "f32", (2, "L", 8)) for n in "qkv")
    a, b = O.exp(q), O.tanh(k)
    g.set_outputs(g.op("scaled_dot_product_attention", a, b, v, is_causal=True))
    return g


def test_diff_aligns_by_name_and_marks_changes():
    g = _sdpa_graph()
    rows = align(g, explicit_causal_mask(g))
    kinds = [(r.kind, (r.after or r.before).split(":")[0].strip()) for r in rows if r.kind != "same"]
    assert kinds == [("added", "%scaled_dot_product_attention_ones"), ("added", "%scaled_dot_product_attention_causal"),
                     ("changed", "%scaled_dot_product_attention")]
    moved = align(g, g.reordered(["tanh", "exp", "scaled_dot_product_attention"]))
    assert [(r.kind, r.before is None) for r in moved if r.kind != "same"] == [("moved", True), ("moved", False)]


def test_diff_text_shows_context_and_summary():
    g = _sdpa_graph()
    text = diff_ir(g, explicit_causal_mask(g), context=0, width=100)
    lines = text.splitlines()
    assert lines[0] == "# g: 3 nodes before, 5 after; 1 changed, 0 removed, 2 added, 0 moved"
    assert sum(1 for x in lines if re.match(r"^ +> ", x)) == 2
    (changed,) = [x for x in lines if " | " in x]
    left = changed.split(" | ")[0]
    assert left.startswith("  %scaled_dot_product_attention:") and len(left) == 48 and left.endswith("…")
    assert "  ... 2 unchanged lines ..." in lines


def test_diff_html_escapes_and_keeps_every_row():
    g = toy_model(layers=1)
    h = g.copy()
    h.nodes[0].source = SourceInfo(module="<script>")
    page = diff_html(g, h, sources=True)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<tr ") == len(align(g, h, sources=True))


@register_pass
@dataclass(frozen=True)
class ExplicitCausalMask(Pass):
    """The example rewrite as a pipeline pass, for the CLI's diff."""

    name = "test-explicit-causal-mask"

    def run(self, graph: chunkc.Graph, ctx: PassContext) -> chunkc.Graph:
        return explicit_causal_mask(graph)


def test_cli_diff_of_a_pipeline_and_of_two_files(tmp_path, capsys):
    g = _sdpa_graph()
    a, b = tmp_path / "a.cir", tmp_path / "b.cir"
    chunkc.save(g, str(a))
    chunkc.save(explicit_causal_mask(g), str(b))
    assert cli_main(["diff", str(a), "-p", "dce,test-explicit-causal-mask", "--pass", "test-explicit-causal-mask"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== pass 2 of 2: test-explicit-causal-mask\n") and "2 added" in out
    assert cli_main(["diff", str(a), str(b), "--context", "-1"]) == 0
    assert "2 added" in capsys.readouterr().out
    assert cli_main(["diff", str(a), "-p", "dce", "--pass", "nope"]) == 1
    assert "--pass 'nope' is not a pass of the pipeline" in capsys.readouterr().err
    html_path = tmp_path / "d.html"
    assert cli_main(["diff", str(a), str(b), "--html", str(html_path)]) == 0
    assert "<table>" in html_path.read_text()
