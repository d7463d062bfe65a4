"""The backend registry: compile, emit_source, write_program, the CLI and the estimator
look backends up by name; a toy backend (tests/toy_backend.py, the one
docs/tutorial_backend.md builds) is registered, compiles chunked plans, and matches
the reference interpreter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chunkc
from chunkc.backends import (Backend, backend_names, emit_source, get_backend, register_backend,
                             unregister_backend, write_program)
from chunkc.cli import main as cli_main
from chunkc.errors import ChunkcError
from chunkc.ir.sizes import evaluate

from backend_cases import CASES, attention
from toy_backend import TRACE

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def trace_backend():
    register_backend(TRACE)
    yield TRACE
    unregister_backend(TRACE.name)


def test_builtin_backends_are_records():
    assert backend_names()[:3] == ("torch", "numpy", "cupy")
    assert get_backend("torch").options == ("grad_mode", "device")
    var, sdpa = chunkc.ir.lookup("var"), chunkc.ir.lookup("scaled_dot_product_attention")
    assert get_backend("numpy").workspace(var) is var.workspace  # the reference's centred copy
    assert get_backend("torch").workspace(var) is None  # ATen's kernel: its own business
    assert get_backend("torch").workspace(sdpa) is sdpa.torch_workspace  # causal rows' mask in a chunk loop


def test_unknown_names_and_options_are_refused():
    case = CASES["mlp"]()
    with pytest.raises(ChunkcError, match="unknown backend 'jax'; choose one of torch, numpy, cupy"):
        emit_source(case.graph, None, "jax")
    with pytest.raises(ChunkcError, match="unknown backend 'jax'"):
        chunkc.estimate_memory(case.graph, sizes={"B": 1, "L": 4}, backend="jax")
    with pytest.raises(ChunkcError, match=r"backend 'numpy': unknown option\(s\) grad_mode \(its options: none\)"):
        emit_source(case.graph, None, "numpy", grad_mode="no_grad")
    with pytest.raises(ChunkcError, match="registered already"):
        register_backend(get_backend("numpy"))
    with pytest.raises(ChunkcError, match="must be an identifier"):
        register_backend(Backend("my backend", emit_source, chunkc.compile, workspace=lambda op: False))


def _expected_log(plan, sizes) -> list[str]:
    """Every node's op once, a region's nodes once per chunk, in schedule order."""
    log, done = [], set()
    for node in plan.graph.nodes:
        region = next((r for r in plan.regions if node.name in r.nodes), None)
        if region is None:
            log.append(node.op.name)
        elif id(region) not in done:
            done.add(id(region))
            extent = int(evaluate(region.extent, sizes))
            chunk = max(1, min(int(evaluate(region.chunk_size, sizes)), extent))
            names = [n.op.name for n in region.region_nodes(plan.graph)]
            log += names * math.ceil(extent / chunk)
    return log


@pytest.mark.parametrize("name", sorted(CASES))
def test_toy_backend_runs_chunked_plans(trace_backend, name):
    case = CASES[name]()
    for sizes in case.sizes:
        log: list[str] = []
        fn = chunkc.compile(case.graph, case.plan, backend="trace", log=log)
        arrays = case.inputs(sizes)
        got = fn(*arrays)
        got = got if isinstance(got, tuple) else (got,)
        for g, r in zip(got, chunkc.interpret(case.graph, *arrays)):
            np.testing.assert_allclose(g, r, **TOL)
        assert log == _expected_log(case.plan, sizes)


def test_toy_backend_with_autochunk_and_the_estimator(trace_backend):
    case = attention(d=64, heads=4)
    sizes = {"B": 1, "L": 512}
    plan = chunkc.autochunk(case.graph, 0.3, sizes=sizes, backend="trace", progress=False)
    assert plan.regions
    fn = chunkc.compile(case.graph, plan, backend="trace")
    for at in (sizes, {"B": 2, "L": 97}):
        arrays = case.inputs(at)
        np.testing.assert_allclose(fn(*arrays), chunkc.interpret(case.graph, *arrays)[0], **TOL)
    # its workspace policy is the references': the estimate is NumPy's, and it holds when measured
    estimate = chunkc.estimate_memory(case.graph, plan, backend="trace").peak_bytes
    assert estimate == chunkc.estimate_memory(case.graph, plan, backend="numpy").peak_bytes
    arrays = case.inputs(sizes)
    fn(*arrays)
    measured = chunkc.measure_peak(fn, *arrays, device="numpy")
    assert abs(measured - estimate) <= 0.05 * estimate, (measured, estimate)


def test_cli_uses_the_registry(trace_backend, tmp_path, capsys):
    case = CASES["mlp"]()
    model = tmp_path / "mlp.cir"
    chunkc.save(case.graph, str(model))
    assert cli_main(["backends"]) == 0
    assert "trace  (log) the NumPy references" in capsys.readouterr().out
    assert cli_main(["compile", str(model), "--backend", "trace", "--budget", "50%", "--sizes", "B=2,L=64"]) == 0
    out = capsys.readouterr()
    assert "# region 0" in out.err and "trace('linear', ref.linear(xp, " in out.out
    assert cli_main(["compile", str(model), "--backend", "trace", "-o", str(tmp_path / "m.py")]) == 1
    assert "backend 'trace' cannot write a program to disk" in capsys.readouterr().err
    with pytest.raises(ChunkcError, match="cannot write a program"):
        write_program(case.graph, None, "trace", tmp_path / "m.py")


def test_unregistered_backend_is_gone():
    register_backend(TRACE)
    unregister_backend("trace")
    assert "trace" not in backend_names()
    with pytest.raises(ChunkcError, match="unknown backend 'trace'"):
        chunkc.compile(CASES["mlp"]().graph, None, backend="trace")
