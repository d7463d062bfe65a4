"""The tutorial's code blocks run, in order, as one program (so the doc cannot rot)."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "tutorial_pass.md"


def test_tutorial_code_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # our own documentation, not model text
    out = capsys.readouterr().out
    assert "graph @scores" in out or "scores" in out
    assert "region 0" in out
    assert namespace["ctx"].plan.estimated_peak_bytes <= namespace["ctx"].plan.budget_bytes
