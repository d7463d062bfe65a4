"""The speed-model benchmark sections (cost-model, regret, inductor) in their quick mode on a
small graph: they run end to end and their tables say what they measured."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from benchmarks import __main__ as driver  # noqa: E402
from benchmarks import common as C  # noqa: E402
from benchmarks.subjects import Subject  # noqa: E402
from graphs import inputs_for, transformer  # noqa: E402


@pytest.fixture(scope="module")
def subject():
    torch.set_num_threads(1)
    g = transformer(layers=1, L="L", D=32, H=2, F=64)
    sizes = {"L": 256}
    return Subject("tiny", "tiny transformer, L = 256", g, tuple(torch.from_numpy(a) for a in inputs_for(g, sizes)),
                   sizes)


def table_rows(body: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines()
            if line.startswith("| ") and not line.startswith("| model")]


def test_sections_are_registered_in_the_doc_order():
    for name in ("cost-model", "regret", "inductor"):
        assert name in driver.OWN and name in C.SECTION_ORDER


def test_cost_model_section_shows_predicted_beside_measured(subject):
    from benchmarks import cost_model
    result = cost_model.run(C.Settings(rounds=1, quick=True), subjects=[subject], budgets=(0.5, 0.2))
    assert not result.failures
    rows = table_rows(result.body)
    assert [r[1] for r in rows] == ["100%", "50%", "20%"]
    unchunked = rows[0]
    assert unchunked[3].endswith(" ms") and unchunked[5].endswith(" ms")
    for r in rows[1:]:
        assert r[3].startswith("×") and r[5][0].isdigit() and r[7] in ("yes", "**no**"), r


def test_regret_section_times_the_alternatives_against_the_chosen_plan(subject):
    from benchmarks import regret
    result = regret.run(C.Settings(rounds=1, quick=True), subjects=[subject], budgets=(0.2,))
    assert not result.failures
    (row,) = table_rows(result.body)
    names = list(regret.alternatives())
    cells = row[3:3 + len(names)]
    assert all(c in ("same plan", "no plan", "dup.") or "(pred." in c for c in cells), cells
    assert row[-2].endswith("%") and row[-1] in ("yes", "**no**")


def test_inductor_section_compiles_and_measures_every_program(subject):
    """Each budget planned for eager PyTorch and for Inductor, both compiled, measured and
    checked against the unchunked program."""
    from benchmarks import inductor
    result = inductor.run(C.Settings(rounds=1, quick=True), subjects=[subject], budgets=(0.3,))
    assert not result.failures
    unchunked, *chunked = table_rows(result.body)
    assert unchunked[2] == "unchunked"
    assert [r[1] for r in chunked] == ["30%, eager", "30%, inductor"]
    for row in chunked:
        compiled, plain = row[3].split(" (")
        assert float(compiled) < float(unchunked[3].split(" (")[0])  # the cut survives compilation
        assert float(row[6]) < 1e-4  # the compiled chunked output matches the unchunked program
        assert row[7] in ("yes", "no", "**no**")
