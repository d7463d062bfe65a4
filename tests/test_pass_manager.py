"""Pass manager, pipelines, the chunkc command line and the Graphviz dump."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.cli import main as cli_main
from chunkc.passes.manager import Pass, PassManager, parse_pipeline, register_pass
from chunkc.viz.dot import render_dot, to_dot

from graphs import attention_block, inputs_for


def test_pipeline_parses_options_with_types():
    passes = parse_pipeline("dce, autochunk{budget=20%, beam=2}, verify")
    assert [p.name for p in passes] == ["dce", "autochunk", "verify"]
    assert passes[1].budget == pytest.approx(0.2) and passes[1].beam == 2


@pytest.mark.parametrize("text, message", [
    ("nosuchpass", "unknown pass 'nosuchpass'"),
    ("autochunk{speed=3}", "unknown option 'speed'"),
    ("autochunk{beam=two}", "beam='two' is not a valid"),
    ("autochunk{budget}", "must be key=value"),
    ("autochunk{{", "cannot parse"),
])
def test_pipeline_errors_say_what_is_wrong(text, message):
    with pytest.raises(chunkc.ChunkcError, match=message):
        parse_pipeline(text)


def test_stages_are_kept_and_dumped(tmp_path):
    g = attention_block()
    pm = PassManager.parse("dce,autochunk{budget=0.5},verify", dump_dir=tmp_path)
    out, ctx = pm.run(g, sizes={"L": 128})
    assert [s.pass_name for s in ctx.stages] == ["input", "dce", "autochunk", "verify"]
    assert ctx.stages[2].options["budget"] == 0.5
    assert ctx.plan is not None and ctx.plan.graph is out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["01-dce.cir", "02-autochunk.cir", "03-verify.cir"]
    assert "graph @" in (tmp_path / "02-autochunk.cir").read_text()


def test_failure_names_the_pass_and_those_before_it():
    @register_pass
    @dataclass(frozen=True)
    class Breaks(Pass):
        name = "test-breaks"

        def run(self, graph, ctx):
            graph.nodes.reverse()  # no longer topological
            return graph

    with pytest.raises(chunkc.IRError, match=r"pass test-breaks \(after dce\).*before it is defined"):
        PassManager.parse("dce,test-breaks").run(attention_block(), sizes={"L": 8})


def test_dce_pass_keeps_values_and_leaves_its_input_alone():
    g = chunkc.Graph("g")
    x = g.add_input("x", "f32", (4, 4))
    g.add_constant("unused", np.ones((4, 4), np.float32))
    O.exp(x)  # dead
    y = O.tanh(x)
    g.set_outputs(y)
    before = chunkc.print_graph(g)
    h, ctx = PassManager.parse("dce").run(g)
    assert [n.op.name for n in h.nodes] == ["tanh"] and h.constants == []
    assert chunkc.print_graph(g) == before and ctx.stages[0].graph is g  # the input stage is kept as it was
    a = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    np.testing.assert_array_equal(chunkc.interpret(h, a)[0], np.tanh(a))
    again, _ = PassManager.parse("dce").run(h)
    assert again is h  # nothing dead: the same graph


def test_cli_opt_prints_ir_and_plan(tmp_path, capsys):
    g = attention_block()
    path = tmp_path / "attn.cir"
    chunkc.save(g, str(path))
    assert cli_main(["opt", str(path), "-p", "autochunk{budget=0.4}", "--sizes", "L=256"]) == 0
    out = capsys.readouterr().out
    assert "graph @attention_block" in out
    assert "# region 0" in out and "estimated peak" in out


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert cli_main(["opt", str(tmp_path / "missing.cir")]) == 1
    assert "no such file" in capsys.readouterr().err
    g = attention_block()
    path = tmp_path / "attn.cir"
    chunkc.save(g, str(path))
    assert cli_main(["opt", str(path), "-p", "autochunk{budget=0.4}"]) == 1
    assert "--sizes: give a value for L" in capsys.readouterr().err


def test_cli_lists_passes(capsys):
    assert cli_main(["passes"]) == 0
    out = capsys.readouterr().out
    assert "autochunk{budget=" in out and "dce" in out


def test_dot_has_a_cluster_per_region_and_escapes_names(tmp_path):
    g = attention_block()
    plan = chunkc.autochunk(g, 0.3, sizes={"L": 256})
    dot = to_dot(g, plan=plan)
    assert dot.count("subgraph \"cluster_") == len(plan.regions) >= 1
    assert "MiB" in dot or "KiB" in dot
    hostile = chunkc.Graph('evil"name')
    x = hostile.add_input('x"; rankdir=LR; "', "f32", (2,))
    hostile.set_outputs(O.exp(x))
    text = to_dot(hostile)
    assert 'rankdir=LR; "' not in text  # the name was sanitized to an identifier
    written = render_dot(dot, tmp_path / "plan.svg")
    if shutil.which("dot"):
        assert written.suffix == ".svg" and written.read_text().lstrip().startswith(("<?xml", "<svg"))
    else:
        assert written.suffix == ".dot"


def test_plan_values_match_after_cli_roundtrip(tmp_path):
    """A graph saved, reloaded and planned still computes the same values."""
    from chunkc.passes.chunked_reference import interpret_plan
    g = attention_block()
    path = tmp_path / "attn.cir"
    chunkc.save(g, str(path))
    h = chunkc.load(str(path))
    plan = chunkc.autochunk(h, 0.4, sizes={"L": 128})
    inputs = inputs_for(g, {"L": 100})
    np.testing.assert_allclose(interpret_plan(plan, *inputs)[0], chunkc.interpret(g, *inputs)[0], atol=1e-4)


def test_cli_compile_writes_a_program_that_runs(tmp_path, capsys):
    """chunkc compile MODEL --budget 40% --backend torch -o out.py: source and weights, loadable."""
    import torch
    from chunkc.backends import load_module
    g = attention_block()
    model = tmp_path / "attn.cir"
    chunkc.save(g, str(model))
    out = tmp_path / "attn_chunked.py"
    assert cli_main(["compile", str(model), "--budget", "40%", "--backend", "torch",
                     "--sizes", "L=256", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "# region 0" in err and "wrote" in err
    module = load_module(str(out))
    x = inputs_for(g, {"L": 200})[0]
    with torch.inference_mode():
        got = module(torch.from_numpy(x))
    got = got[0] if isinstance(got, (tuple, list)) else got
    np.testing.assert_allclose(got.numpy(), chunkc.interpret(g, x)[0], atol=1e-4)
    assert "for " in out.read_text()  # the chunk loop is in the generated source
