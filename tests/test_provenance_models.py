"""Sources of real models: every node imported from the zoo (PyTorch) and from a dynamo ONNX
export points at a line of the model's own code and survives the text form; a 24-layer GPT-2
reads in the model's terms (report, budget error) and draws at depth 2 in a few dozen boxes."""

from __future__ import annotations

import re
import shutil

import pytest

import chunkc
from chunkc.passes.report import plan_report
from chunkc.viz.dot import render_dot, to_dot
from frontends.provenance import is_framework_file

pytestmark = pytest.mark.slow

# the model's own code, per zoo model: the files its nodes may point at
OWN_CODE = {
    "transformer": ("chunkc/zoo/transformer.py",),
    "evoformer": ("chunkc/zoo/evoformer.py",),
    "gpt2": ("transformers/models/gpt2/modeling_gpt2.py",),
    "vit": ("transformers/models/vit/modeling_vit.py", "chunkc/zoo/zoo.py"),  # zoo.py: the cropped embeddings
    "unet": ("diffusers/models/",),
}


def _check_sources(g: chunkc.Graph, own: tuple[str, ...]) -> None:
    for n in g.nodes:
        src = n.source
        assert src is not None and src.file and src.line > 0, n
        assert not is_framework_file(src.file), (n, src)
        assert any(part in src.file for part in own), (n, src)
        assert src.code(), (n, src)  # a real line of that file
    text = chunkc.print_graph(g)
    parsed = chunkc.parse_graph(text)
    assert chunkc.print_graph(parsed) == text
    assert [n.source for n in parsed.nodes] == [n.source for n in g.nodes]


@pytest.mark.parametrize("name", sorted(OWN_CODE))
def test_every_zoo_node_points_at_the_models_own_code(name):
    zoo = pytest.importorskip("chunkc.zoo")
    case = getattr(zoo, name)()
    g = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    _check_sources(g, OWN_CODE[name])
    modules = {n.source.module for n in g.nodes}
    assert len(modules) > 3 and all(m.replace(".", "").replace("_", "").isalnum() or m == "" for m in modules)


def test_gpt2_sources_name_the_attention_module_and_line():
    zoo = pytest.importorskip("chunkc.zoo")
    case = zoo.gpt2()
    g = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    softmax = next(n for n in g.nodes if n.op.name == "softmax")
    assert softmax.source.module == "model.h.0.attn" and softmax.source.module_class == "GPT2Attention"
    c_attn = next(n for n in g.nodes if n.source.module == "model.h.0.attn.c_attn")
    assert c_attn.source.module_class == "Conv1D"
    assert "self.c_attn(" in c_attn.source.code()  # the leaf layer's call site in the model's file


def test_dynamo_onnx_export_nodes_point_at_the_models_own_code():
    zoo = pytest.importorskip("chunkc.zoo")
    from onnx_helpers import export_torch

    case = zoo.gpt2()
    m = export_torch(case.module, case.example_inputs(), True, {0: {1: "L"}})
    g = chunkc.from_onnx(m)
    _check_sources(g, OWN_CODE["gpt2"])
    names = {n.name for n in m.graph.node}
    assert all(n.source.onnx_node in names for n in g.nodes)
    assert any(n.source.module == "model.h.0.attn" for n in g.nodes)


# -- a 24-layer GPT-2 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_24():
    zoo = pytest.importorskip("chunkc.zoo")
    case = zoo.gpt2(n_layer=24, n_embd=768, n_head=12)
    return chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())


@pytest.fixture(scope="module")
def gpt2_24_plan(gpt2_24):
    return chunkc.autochunk(gpt2_24, 0.3, sizes={"L": 2048}, progress=False)


def test_24_layers_at_depth_2_draw_in_a_few_dozen_boxes(gpt2_24, gpt2_24_plan, tmp_path):
    dot = to_dot(gpt2_24, gpt2_24_plan, depth=2)
    units = re.findall(r'^\s*"[^"]+" \[label=', dot, flags=re.M)
    assert len(gpt2_24.nodes) > 900 and len(units) <= 250  # ~970 nodes (canonicalized) in at most 250 boxes
    layers = re.findall(r'\[label="model\.h\.(\d+) \(GPT2Block\)\\n(\d+) nodes, peak ', dot)
    assert sorted(int(k) for k, _ in layers) == list(range(24))
    assert sum(int(n) for _, n in layers) < len(gpt2_24.nodes)
    assert "index arithmetic" in dot
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed: the DOT source was checked, not its rendering")
    png = render_dot(dot, tmp_path / "gpt2_24.png")
    assert png.suffix == ".png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_24_layer_report_names_modules_for_every_region(gpt2_24_plan):
    report = plan_report(gpt2_24_plan)
    regions = report.split("# region ")[1:]
    assert len(regions) == len(gpt2_24_plan.regions) >= 2
    for text in regions:
        assert re.search(r"#   in the model: model\.h\.\d+\.[\w.]+ → model\.[\w.]+ \(\d+ modules\); modeling_gpt2\.py:\d+", text)


def test_24_layer_budget_error_names_module_and_line(gpt2_24):
    with pytest.raises(chunkc.InfeasibleBudgetError) as info:
        chunkc.autochunk(gpt2_24, 1e-4, sizes={"L": 2048}, progress=False)
    text = str(info.value)
    # the floor is in nested loops (the written-out attention rewritten into SDPA split over its
    # keys), at a node of the key chain they recompute: a layer's leaf module (model.h.0.attn.c_attn)
    assert re.search(r"held at node \w+ \(\w+\) in model\.h\.\d+(\.\w+)+ \(\w+\), modeling_gpt2\.py:\d+", text)
    assert re.search(r"Held in full there: %\w+ [0-9.]+ [KM]iB", text)  # the values held whole at the floor
