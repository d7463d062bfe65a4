"""The tutorials' code blocks run, in order, as one program each (so the docs cannot rot)."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXCERPT = "<!-- from tests/toy_backend.py -->\n"


def _blocks(doc: Path) -> tuple[list[str], list[str]]:
    """(code to run, excerpts of tests/toy_backend.py) of a tutorial."""
    run, excerpts = [], []
    for marker, block in re.findall(r"(<!-- from [^>]*-->\n)?```python\n(.*?)```", doc.read_text(), re.S):
        (excerpts if marker == EXCERPT else run).append(block)
    return run, excerpts


def _run(doc: Path) -> dict:
    namespace: dict = {}
    for block in _blocks(doc)[0]:
        exec(compile(block, str(doc), "exec"), namespace)  # our own documentation, not model text
    return namespace


def test_tutorial_code_runs(capsys):
    namespace = _run(DOCS / "tutorial_pass.md")
    out = capsys.readouterr().out
    assert "graph @scores" in out or "scores" in out
    assert "region 0" in out
    assert namespace["ctx"].plan.estimated_peak_bytes <= namespace["ctx"].plan.budget_bytes


def test_backend_tutorial_code_runs(capsys):
    from chunkc.backends import backend_names
    namespace = _run(DOCS / "tutorial_backend.md")
    out = capsys.readouterr().out
    assert "trace('linear', ref.linear(xp, x_chunk, self.w1))" in out
    assert "trace  (log) the NumPy references" in out
    assert namespace["chunks"] > 1  # the region ran in several chunks (the tutorial counts its ops)
    assert "trace" not in backend_names()  # the tutorial unregisters it at the end


def test_backend_tutorial_shows_the_tested_toy():
    source = (Path(__file__).parent / "toy_backend.py").read_text()
    excerpts = _blocks(DOCS / "tutorial_backend.md")[1]
    assert len(excerpts) == 3
    for block in excerpts:
        assert block in source, f"docs/tutorial_backend.md shows code that tests/toy_backend.py does not hold:\n{block}"
