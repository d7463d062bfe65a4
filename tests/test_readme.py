"""The README's "Use it" lines, run verbatim on zoo models: the measured peak of the compiled
function stays within the budget the plan's report prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

README = Path(__file__).parent.parent / "README.md"


def use_it_snippet() -> str:
    """The first Python block of the README's "Use it" section."""
    text = README.read_text()
    section = text[text.index("## Use it"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: the 'Use it' section has no python block"
    return match.group(1)


def _case(name: str):
    from chunkc import zoo
    if name == "gpt2":
        return zoo.gpt2()
    return zoo.transformer(d=128)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt2", "transformer"])
def test_readme_snippet_measures_within_the_printed_budget(model, tmp_path, monkeypatch):
    case = _case(model)
    ids = case.make_inputs(512)[0]
    monkeypatch.chdir(tmp_path)  # the snippet writes plan.dot
    namespace = {"model": case.module, "ids": ids}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(use_it_snippet(), "README.md", "exec"), namespace)  # the README's own lines
    printed = out.getvalue()
    budget = re.search(r"budget (\d+\.\d+) MiB", printed)
    assert budget, printed
    measured = int(printed.strip().splitlines()[-1])
    plan = namespace["plan"]
    assert plan.regions and plan.backend == "torch"  # it chunks, for the backend that runs
    # the report rounds to 0.01 MiB
    assert measured <= (float(budget.group(1)) + 0.005) * 2**20, f"measured {measured} B over the budget\n{printed}"
    assert measured <= plan.budget_bytes
    assert (tmp_path / "plan.dot").read_text().startswith("digraph")
    with torch.no_grad():
        torch.testing.assert_close(namespace["y"], case.module(ids), rtol=1e-4, atol=1e-4)
