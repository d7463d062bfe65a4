"""The GPU benchmark (benchmarks/gpu) cannot rot between GPU sessions: its CPU dry run runs
the same saved graphs and plans through the same script (PyTorch on the CPU in place of
CUDA, NumPy in place of CuPy, small sizes) and every program must run and agree with the
unchunked one; the saved files are complete and small; the generated PyTorch code calls only
functions that torch 2.11 (the GPU machine's) has."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks.gpu import report, run
from benchmarks.gpu.cases import DATA, MANIFEST, cases

# Every torch.* / F.* name the generated code of the benchmark's programs uses, each checked
# to exist in torch 2.11 (the dry run below was run with torch 2.11.0 in a virtual environment).
TORCH_2_11_NAMES = {
    "F.conv2d", "F.embedding", "F.gelu", "F.layer_norm", "F.linear", "F.softmax", "torch.addmm", "torch.arange",
    "torch.bool", "torch.cat", "torch.cumsum", "torch.einsum", "torch.empty", "torch.float32", "torch.full",
    "torch.inference_mode", "torch.Tensor", "torch.int64", "torch.load", "torch.logical_and", "torch.matmul", "torch.nn.Module",
    "torch.nn.functional", "torch.relu", "torch.sigmoid", "torch.split", "torch.tanh", "torch.tensor", "torch.where",
}


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_prepared_files_are_complete_and_small():
    manifest = _manifest()
    assert set(manifest["models"]) == set(cases())
    for key, spec in manifest["models"].items():
        assert (DATA / key / "graph.chunkc").exists() and (DATA / key / "graph.chunkc.npz").exists()
        assert [p["budget"] for p in spec["plans"]] == list(manifest["budgets"])
        assert any("file" in p for p in spec["plans"]), f"{key}: no plan at any budget"
        _, programs = run.load_programs(key, spec)
        for p in spec["plans"]:
            if "file" in p:
                plan = programs[f"{round(p['budget'] * 100)}%"]
                assert plan.regions and plan.estimated_peak_bytes == p["estimated_peak_bytes"]
                assert plan.estimated_peak_bytes <= plan.budget_bytes
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 32 * 2**20, f"benchmarks/gpu/data holds {total / 2**20:.1f} MiB; keep it well under 64 MiB"


def test_generated_pytorch_code_uses_only_what_torch_2_11_has():
    from chunkc.backends import emit_source
    used: set[str] = set()
    for key, spec in _manifest()["models"].items():
        graph, programs = run.load_programs(key, spec)
        sources = [emit_source(graph, None, "torch")]
        sources += [emit_source(plan.graph, plan, "torch") for plan in programs.values() if plan is not None]
        for text in sources:
            used |= set(re.findall(r"\b(?:torch|F)(?:\.[A-Za-z_]\w*)+", text))
    new = sorted(used - TORCH_2_11_NAMES)
    assert not new, (f"the generated code now calls {new}: check that torch 2.11 has them (run "
                     "`python -m benchmarks.gpu.run --dry-run` with torch 2.11), then add them to TORCH_2_11_NAMES")


def test_dry_run_runs_every_program_and_writes_the_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n<!-- memory-speed:start -->\nkept as it is\n<!-- memory-speed:end -->\n")
    assert run.main(["--dry-run", "--out", str(tmp_path / "out"), "--doc", str(doc), "--rounds", "1"]) == 0
    results = json.loads((tmp_path / "out" / run.RESULTS_NAME).read_text())
    assert results["machine"]["dry_run"] and results.get("finished") and not results["stopped"]
    manifest = _manifest()
    for key, spec in manifest["models"].items():
        backends = results["models"][key]["backends"]
        assert set(backends) == {"PyTorch (CPU, dry run)", "NumPy (dry run)"}
        for label, b in backends.items():
            assert "error" not in b, f"{key} on {label}: {b.get('error')}\n{b.get('traceback')}"
            assert set(b["variants"]) == {"unchunked"} | {f"{round(p['budget'] * 100)}%" for p in spec["plans"]
                                                          if "file" in p}
            for name, v in b["variants"].items():
                assert v["correct"], f"{key} {name} on {label}: differs from unchunked by {v['max_abs_diff']}"
                # tiny sizes: tracemalloc's Python objects, and copies of permuted matmul operands the
                # record cannot see, weigh more than at the GPU sizes (tests/test_models.py: within 2%)
                assert abs(v["measured"] - v["estimate"]) <= 0.15 * v["measured"], (key, label, name, v)
                assert name == "unchunked" or "time_ratio" in v
    text = doc.read_text()
    assert "kept as it is" in text and "<!-- gpu:start -->" in text
    assert "A CPU dry run" in text and text.count("| PyTorch (CPU, dry run) |") == sum(
        1 + sum("file" in p for p in s["plans"]) for s in manifest["models"].values())
    assert (tmp_path / "out" / "benchmarks.md").read_text() == text


def test_time_budget_stops_the_run_and_keeps_what_it_has(tmp_path):
    assert run.main(["--dry-run", "--out", str(tmp_path), "--time-budget", "0", "--models", "gpt2"]) == 1
    results = json.loads((tmp_path / run.RESULTS_NAME).read_text())
    assert "time budget of 0 s spent before gpt2" in results["stopped"]
    assert "Stopped early" in report.render(results)


def test_pending_section_says_what_to_run():
    text = report.render_pending()
    assert "Awaiting a GPU run" in text and report.RUN_COMMAND in text
    for spec in _manifest()["models"].values():
        assert spec["label"] in text


def test_a_run_refuses_to_start_without_what_it_needs(monkeypatch, capsys):
    monkeypatch.setattr(run, "MANIFEST", DATA / "no_such_manifest.json")
    assert run.main(["--dry-run"]) == 2
    assert "run `python -m benchmarks.gpu.prepare` first" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(run.preflight(dry_run=False) is not None, reason=str(run.preflight(dry_run=False)))
def test_gpu_run_of_one_model(tmp_path):
    assert run.main(["--out", str(tmp_path), "--doc", str(tmp_path / "b.md"), "--models", "evoformer",
                     "--rounds", "2"]) == 0
    results = json.loads((tmp_path / run.RESULTS_NAME).read_text())
    for label, b in results["models"]["evoformer"]["backends"].items():
        assert "error" not in b, b
        for name, v in b["variants"].items():
            assert v["correct"], (label, name)
            assert abs(v["measured"] - v["estimate"]) <= 0.05 * v["measured"], (label, name, v)
