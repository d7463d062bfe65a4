"""The benchmark suite's machinery: section rewriting, interleaved timing, size search."""

from __future__ import annotations

import itertools

import pytest

from benchmarks import common as C
from benchmarks.max_length import largest_measured, longest


def test_replace_section_keeps_the_other_sections_byte_for_byte():
    text = ("# Benchmarks\n\nintro\n\n<!-- backend-speed:start -->\nB old\n<!-- backend-speed:end -->\n\n"
            "<!-- memory-speed:start -->\nM old\n<!-- memory-speed:end -->\ntail\n")
    out = C.replace_section(text, "memory-speed", "M new")
    assert out == text.replace("M old", "M new")
    assert C.replace_section(out, "memory-speed", "M old") == text


def test_new_sections_go_in_the_documented_order():
    text = "# B\n\n<!-- backend-speed:start -->\nB\n<!-- backend-speed:end -->\n"
    out = C.replace_section(text, "max-length", "X")
    assert out.index("max-length:start") < out.index("backend-speed:start")
    out = C.replace_section(out, "memory-speed", "M")
    assert out.index("memory-speed:start") < out.index("max-length:start") < out.index("backend-speed:start")
    out = C.replace_section(out, "some-new-thing", "N")  # unknown names go last
    assert out.rstrip().endswith("<!-- some-new-thing:end -->")
    assert out.count("max-length:start") == 1


def test_intro_is_added_once_and_refreshed_in_place():
    text = "# Benchmarks\n\n<!-- backend-speed:start -->\nB\n<!-- backend-speed:end -->\n"
    once = C.ensure_intro(text)
    assert once.startswith("<!-- intro:start -->\n# Benchmarks")
    assert once.count("# Benchmarks") == 1 and "<!-- backend-speed:start -->\nB\n" in once
    assert C.ensure_intro(once) == once
    stale = once.replace("Every figure below", "Old words")
    assert C.ensure_intro(stale) == once


def test_write_section_stamps_command_date_and_machine(tmp_path):
    settings = C.Settings(command="python -m benchmarks memory-speed", doc=tmp_path / "b.md", img=tmp_path)
    C.write_section("memory-speed", "## Title\n\nbody", settings, seconds=90)
    text = (tmp_path / "b.md").read_text()
    section = text.split("<!-- memory-speed:start -->")[1].split("<!-- memory-speed:end -->")[0]
    assert "`python -m benchmarks memory-speed`" in section and "UTC" in section
    assert "cores" in section and "1.5 min" in section


class FakeClock:
    """A clock that only moves when a fake workload says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds_iter):
        it = iter(seconds_iter)

        def fn():
            self.now += next(it)
        return fn


def test_round_robin_ratios_are_per_round_medians_against_the_reference():
    clock = FakeClock()
    fns = {"ref": clock.work(itertools.repeat(2.0)),
           "fast": clock.work(itertools.repeat(1.0)),
           "noisy": clock.work(itertools.cycle([3.0, 3.0, 100.0]))}
    times = C.round_robin_times(fns, (), rounds=5, warmup=1, clock=clock)
    assert {k: len(v) for k, v in times.items()} == {"ref": 5, "fast": 5, "noisy": 5}
    ratios = C.round_robin(fns, (), rounds=5, warmup=1, clock=clock)
    assert ratios["fast"].median == pytest.approx(0.5)
    assert ratios["noisy"].median == pytest.approx(1.5)  # the outlier does not move the median
    assert ratios["noisy"].high == pytest.approx(50.0)


def test_round_robin_rotates_the_order():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    C.round_robin_times(fns, (), rounds=6, warmup=0)
    rounds = [tuple(calls[i:i + 3]) for i in range(0, 18, 3)]
    assert rounds[:3] == [("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")]
    assert rounds[3] == ("c", "b", "a")  # reversed on the second cycle
    assert {r[0] for r in rounds} == {"a", "b", "c"}


def test_interleaved_ratio_is_b_over_a():
    clock = FakeClock()
    r = C.interleaved_ratio(clock.work(itertools.repeat(4.0)), clock.work(itertools.repeat(5.0)), (), pairs=3,
                            clock=clock)
    assert r.median == pytest.approx(1.25) and r.rounds == 3


@pytest.mark.parametrize("threshold", [1, 2, 3, 7, 8, 9, 100, 1000, 4095])
def test_longest_finds_the_last_size_that_fits(threshold):
    probes = []

    def fits(n):
        probes.append(n)
        return n <= threshold

    assert longest(fits, 1, 4096) == threshold
    assert len(probes) <= 2 * 13  # doubling then bisection: logarithmic


def test_longest_stops_at_the_cap_and_rejects_a_start_that_does_not_fit():
    assert longest(lambda n: True, 3, 100) == 100
    with pytest.raises(ValueError, match="does not fit"):
        longest(lambda n: n < 5, 10, 100)


def test_largest_measured_trusts_a_proposal_that_fits_and_bisects_one_that_does_not():
    assert largest_measured(lambda n: True, 100, 400) == (400, 1)
    assert largest_measured(lambda n: True, 100, 100) == (100, 0)
    n, tries = largest_measured(lambda n: n <= 300, 100, 400)
    assert 297 <= n <= 300 and tries > 1  # to 1% of the size


def test_plan_error_names_the_floor_for_an_infeasible_budget():
    from chunkc.errors import InfeasibleBudgetError
    exc = InfeasibleBudgetError("no plan", lowest_peak_bytes=3 * 2**20, peak_node="softmax_1")
    assert C.plan_error(exc, 12 * 2**20) == ("infeasible: lowest reachable ≈ 3.0 MiB = 25% of the unchunked "
                                             "peak, at `softmax_1`")
    held = {"k": 4 * 2**20, "v": 2**20, "x": 2**19, "mask": 2**10}
    exc = InfeasibleBudgetError("no plan", lowest_peak_bytes=6 * 2**20, peak_node="sdpa", held=held)
    assert C.plan_error(exc, 12 * 2**20) == ("infeasible: lowest reachable ≈ 6.0 MiB = 50% of the unchunked "
                                             "peak, at `sdpa`; held in full: `k` 4.0 MiB, `v` 1.0 MiB, `x` 0.5 MiB")
    assert C.plan_error(RuntimeError("bad | thing\nmore")) == "RuntimeError: bad / thing"


def test_order_sections_moves_sections_unchanged_into_the_documented_order():
    intro = C.ensure_intro("# Benchmarks\n")
    text = (intro + "\n\n<!-- memory-accuracy:start -->\nA\n\n<!-- memory-accuracy:end -->\n\n"
            "<!-- compile-speed:start -->\nC\n<!-- compile-speed:end -->\n\n"
            "<!-- memory-speed:start -->\nM\n<!-- memory-speed:end -->\n")
    out = C.order_sections(text)
    assert out.index("memory-speed:start") < out.index("compile-speed:start") < out.index("memory-accuracy:start")
    assert "<!-- memory-accuracy:start -->\nA\n\n<!-- memory-accuracy:end -->" in out
    assert out.startswith(intro.rstrip("\n")) and C.order_sections(out) == out


def test_eager_parity_section_flags_models_over_the_target():
    from benchmarks import eager_parity as P
    ok, slow = C.Ratio(1.01, 0.99, 1.03, 3), C.Ratio(1.05, 1.0, 1.1, 3)
    rows = [P.ModelRow("A", 64, (10, 8), slow, ok), P.ModelRow("B", 64, (10, 10), slow, slow),
            P.ModelRow("C", 64, error="RuntimeError: boom")]
    choices = [P.ChoiceRow("SDPA: x / y", 256, C.Ratio(0.5, 0.4, 0.6, 3))]
    text = P.render(rows, choices, C.Settings(rounds=3))
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert lines["A"].endswith("| yes |") and "10 → 8" in lines["A"]
    assert lines["B"].endswith("| **no** |") and "RuntimeError: boom" in lines["C"]
    assert "0.500 (0.40–0.60)" in text and "eager-parity" in C.SECTION_ORDER


def test_eager_parity_lowering_choices_time_both_sides():
    import torch
    from benchmarks import eager_parity as P
    torch.set_num_threads(1)
    rows = P.lowering_choices(C.Settings(rounds=1, quick=True))
    assert [r.size for r in rows] == [256, 256] and all(r.ratio.median > 0 for r in rows)


def test_max_length_rerun_of_some_models_keeps_the_other_rows_with_their_date(tmp_path):
    """``--models`` reruns the named models; every other row comes back from the section as
    last written, marked with that run's time once, and the figure reads its ratio back."""
    from benchmarks import max_length as M
    rows = {k: f"| {m.label} | cfg | base | 1.0 | 1 | 2 | **{i + 2}.50×** | ×1.00 | probes |"
            for i, (k, m) in enumerate(M.models().items())}
    section = "\n".join(["## Breaking the memory wall", "", "| h |", "|---|", *rows.values(), "",
                         "*Produced by `python -m benchmarks max-length` on 2026-11-28 15:46 UTC; machine: x.*"])
    doc = tmp_path / "b.md"
    doc.write_text(C.replace_section("# Benchmarks\n", M.NAME, section))
    settings = C.Settings(doc=doc, img=tmp_path / "img", models=("gpt2",))
    kept = M._kept_rows(settings, ["gpt2"])
    assert set(kept) == set(rows) - {"gpt2"}
    line = kept["vit"].line
    assert line.startswith(rows["vit"][:-1].rstrip()) and line.endswith("; row measured on 2026-11-28 15:46 UTC |")
    assert kept["vit"].ratio == 2 + list(rows).index("vit") + 0.5
    # kept again by a later partial run: the row keeps the time of the run that measured it
    doc.write_text(C.replace_section("# Benchmarks\n", M.NAME, section.replace(rows["vit"], line)
                                     .replace("on 2026-11-28 15:46 UTC; machine", "on 2026-11-29 02:00 UTC; machine")))
    assert M._kept_rows(settings, ["gpt2"])["vit"].line == line
    with pytest.raises(ValueError, match="unknown model"):
        M.run(C.Settings(doc=doc, models=("gpt3",)))
