"""The training benchmark's quick mode runs end to end: every contender measured and timed,
chunkc's step within its budget, the longest-sequence search done."""

from __future__ import annotations

import re

from benchmarks import common as C
from benchmarks import training as T


def test_training_section_quick(tmp_path):
    settings = C.Settings(rounds=1, quick=True, doc=tmp_path / "benchmarks.md", img=tmp_path / "img")
    res = T.measure(T.QUICK, settings)
    eager, checkpoint, both, chunked, equal = res.rows
    assert eager.name == "eager" and chunked.name.startswith("chunkc") and equal.name == T.EQUAL_MEMORY
    assert checkpoint.measured < eager.measured and both.measured < eager.measured
    assert chunked.measured is not None, chunked.note
    assert chunked.measured <= res.budget == int(T.BUDGET * eager.measured)
    assert all(r.ratio is not None for r in (checkpoint, both, chunked, equal))
    # the equal-memory row: planned at checkpoint's measured peak, and holds it
    assert equal.measured is not None and equal.measured <= checkpoint.measured, equal.note
    assert res.equal_memory is not None
    assert T.QUICK.base < res.longest_by_plan <= T.QUICK.cap
    body = T.render(res, settings)
    assert body.startswith("## Training") and "| chunkc at 20% of eager |" in body
    assert re.search(r"by chunkc's plan, L = \d+", body)
    assert re.search(r"\*\*At equal memory\*\* .* of checkpoint's time", body)
    C.write_section(T.NAME, body, settings)
    assert "<!-- training:start -->" in settings.doc.read_text()
