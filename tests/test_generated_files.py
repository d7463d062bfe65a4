"""What users keep: a generated file says how to load and call it, the sizes it accepts and the
plan in brief; it loads back with its weights (and its input checks); ``chunkc opt -o x.cir``
writes a model the next command reads; run-time chunk formulas are named functions."""

from __future__ import annotations

import ast
import dataclasses

import numpy as np
import pytest
import sympy

import chunkc
from chunkc.backends import load_module, load_program, write_program
from chunkc.cli import main
from chunkc.errors import InputError
from chunkc.ir.sizes import ceildiv, sym

from graphs import attention_block, inputs_for

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def planned():
    g = attention_block()
    return g, chunkc.autochunk(g, 0.3, sizes={"L": 256}, progress=False)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_a_written_program_explains_itself_and_loads_back(planned, backend, tmp_path):
    g, plan = planned
    path = tmp_path / "attn_chunked.py"
    files = write_program(g, plan, backend, path)
    assert files == [str(path), str(path.with_suffix(".pt" if backend == "torch" else ".npz"))]
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc.startswith(f"chunkc {chunkc.__version__}: graph attention_block for the ")
    assert "Load and call it:" in doc and ("load_module(path)" if backend == "torch" else "load_program(path)") in doc
    assert "x: f32[L, 64]" in doc and "for any L >= 1, chunk sizes computed at run time" in doc
    assert f"{len(plan.regions)} chunk region(s), planned at L=256 for the {backend} backend" in doc  # re-checked there
    assert "budget 0.62 MiB" in doc and "region 0:" in doc
    x = inputs_for(g, {"L": 300})[0]
    want = chunkc.interpret(g, x)[0]
    if backend == "torch":
        program = load_module(path)
        got = program(torch.from_numpy(x)).numpy()
        with pytest.raises(InputError, match="input x: expected dtype f32"):
            program(torch.from_numpy(x).double())
    else:
        program = load_program(path)
        got = program(x)
        with pytest.raises(InputError, match="input x: expected rank 2"):
            program(x[None])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert program.chunkc_budget is None  # the plan is not saved with the file: no run-time budget check


def test_a_run_time_chunk_formula_is_a_named_function(planned):
    g, plan = planned
    src = chunkc.compile(g, plan).chunkc_source
    tree = ast.parse(src)
    helpers = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("chunk_size_")]
    assert helpers == [f"chunk_size_{i}" for i in range(len(plan.regions))]
    assert "chunk = chunk_size_0(L)" in src
    assert "largest = " in src and "iterations = " in src  # in steps: the budget's largest chunk, evened out


def test_opt_output_is_a_model_the_next_command_reads(tmp_path, capsys):
    model = tmp_path / "attn.cir"
    chunkc.save(attention_block(), model)
    out = tmp_path / "attn_opt.cir"
    assert main(["opt", str(model), "-p", "dce,autochunk{budget=50%}", "--sizes", "L=64", "-o", str(out)]) == 0
    assert (tmp_path / "attn_opt.cir.npz").exists()
    assert "# chunk plan for graph attention_block" in out.read_text()
    assert main(["compile", str(out), "--budget", "50%", "--sizes", "L=64", "-o", str(tmp_path / "m.py")]) == 0
    g2 = chunkc.load(out)
    x = inputs_for(g2, {"L": 64})[0]
    np.testing.assert_allclose(chunkc.interpret(g2, x)[0], chunkc.interpret(attention_block(), x)[0], rtol=1e-5)
    capsys.readouterr()


def test_print_plan_is_the_report(planned):
    from chunkc.passes.report import plan_report
    _, plan = planned
    assert str(plan) == plan_report(plan)
    assert str(plan).startswith("# chunk plan for graph attention_block at sizes L=256, for the torch backend")


def test_a_balanced_chunk_formula_over_a_compound_extent():
    """Attention over L + 1 tokens (a class token first): the chunk helper computes
    ``ceildiv(n, ceildiv(n, largest))`` with n = L + 1 in parentheses, so the loop runs the
    planned number of iterations at every size (unparenthesized, it ran one)."""
    from chunkc import ops as O

    from graphs import attention

    rng = np.random.default_rng(0)
    g = chunkc.Graph("class_token")
    x = g.add_input("x", "f32", ("L", 64))
    token = g.add_constant("token", rng.standard_normal((1, 64)).astype(np.float32))
    t = O.concat(token, x, axis=0)
    g.set_outputs(attention(g, t, lambda *s: g.add_constant("w", (rng.standard_normal(s) / 8).astype(np.float32)),
                            "L + 1", 64, 4) + t)
    # the region over the L + 1 tokens (the lowest budgets chunk it; at others heads may win),
    # given the balanced formula the selection writes when the affine model binds
    plan = chunkc.autochunk(g, 0.28, sizes={"L": 255}, progress=False)
    assert plan.regions and str(plan.regions[0].extent) == "L + 1"
    n, largest = plan.regions[0].extent, sympy.Min(sym("L") + 1, sympy.floor(8192 / sym("L")))
    plan = dataclasses.replace(plan, regions=(plan.regions[0].with_chunk_size(ceildiv(n, ceildiv(n, largest))),))
    src = chunkc.compile(g, plan).chunkc_source
    helper = next(f for f in ast.parse(src).body if isinstance(f, ast.FunctionDef) and f.name == "chunk_size_0")
    scope: dict = {}
    exec(compile(ast.Module([helper], []), "<chunk_size_0>", "exec"), scope)
    formula = plan.regions[0].chunk_size
    for size in (255, 511, 1000):
        want = int(formula.subs({s: size for s in formula.free_symbols}))
        assert scope["chunk_size_0"](size) == want, size
    x = inputs_for(g, {"L": 300})[0]
    got = chunkc.compile(g, plan)(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), chunkc.interpret(g, x)[0], rtol=1e-4, atol=1e-4)
