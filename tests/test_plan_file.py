"""chunkc.save_plan / chunkc.load_plan: a plan and its graph round-trip through one JSON
file (weights beside it, or shared with a saved graph), and bad files are refused by name."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import chunkc
from chunkc.errors import ChunkcError

from backend_cases import attention, symbolic_chunk, two_regions


def _same_plan(a, b) -> None:
    assert a.regions == b.regions
    assert a.sizes == b.sizes and a.backend == b.backend
    assert (a.budget_bytes, a.estimated_peak_bytes, a.unchunked_peak_bytes) == \
        (b.budget_bytes, b.estimated_peak_bytes, b.unchunked_peak_bytes)
    assert a.notes == b.notes and a.stats == b.stats
    assert [n.name for n in a.graph.nodes] == [n.name for n in b.graph.nodes]
    for x, y in zip(a.graph.constants, b.graph.constants):
        assert x.name == y.name and np.array_equal(x.data, y.data)


@pytest.mark.parametrize("make", [attention, symbolic_chunk, two_regions])
def test_hand_made_plans_round_trip(tmp_path, make):
    case = make()
    files = chunkc.save_plan(case.plan, tmp_path / "plan.json")
    assert [p.rsplit("/", 1)[-1] for p in files] == ["plan.json", "plan.json.npz"]
    loaded = chunkc.load_plan(tmp_path / "plan.json")
    _same_plan(case.plan, loaded)
    sizes = case.sizes[0]
    arrays = case.inputs(sizes)
    want = chunkc.compile(case.graph, case.plan, backend="numpy")(*arrays)
    got = chunkc.compile(loaded.graph, loaded, backend="numpy")(*arrays)
    for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    assert chunkc.estimate_memory(loaded.graph, loaded, sizes=sizes).peak_bytes == \
        chunkc.estimate_memory(case.graph, case.plan, sizes=sizes).peak_bytes


def test_autochunk_plan_round_trips_with_its_reordered_graph_and_statistics(tmp_path):
    case = attention(d=64, heads=4)
    plan = chunkc.autochunk(case.graph, 0.3, sizes={"B": 1, "L": 256}, progress=False)
    assert plan.regions and plan.stats and plan.notes
    chunkc.save_plan(plan, tmp_path / "p.json")
    loaded = chunkc.load_plan(tmp_path / "p.json")
    _same_plan(plan, loaded)
    assert chunkc.estimate_memory(loaded.graph, loaded).peak_bytes == plan.estimated_peak_bytes


def test_plans_of_one_model_share_the_saved_graphs_weights(tmp_path):
    case = attention(d=64, heads=4)
    chunkc.save(case.graph, tmp_path / "graph.chunkc")
    (tmp_path / "plans").mkdir()
    for budget in (0.5, 0.3):
        plan = chunkc.autochunk(case.graph, budget, sizes={"B": 1, "L": 256}, progress=False)
        files = chunkc.save_plan(plan, tmp_path / "plans" / f"plan_{budget}.json", weights=tmp_path / "graph.chunkc")
        assert files == [str(tmp_path / "plans" / f"plan_{budget}.json")]  # no weights of its own
        data = json.loads((tmp_path / "plans" / f"plan_{budget}.json").read_text())
        assert data["weights"] == "../graph.chunkc.npz"
        _same_plan(plan, chunkc.load_plan(tmp_path / "plans" / f"plan_{budget}.json"))
    assert sorted(p.name for p in tmp_path.rglob("*.npz")) == ["graph.chunkc.npz"]


def test_shared_weights_must_hold_the_plans_constants(tmp_path):
    other = two_regions()
    chunkc.save(other.graph, tmp_path / "other.chunkc")
    with pytest.raises(ChunkcError, match="lacks the plan graph's constants"):
        chunkc.save_plan(attention().plan, tmp_path / "p.json", weights=tmp_path / "other.chunkc")
    with pytest.raises(ChunkcError, match="does not exist; save the graph first"):
        chunkc.save_plan(attention().plan, tmp_path / "p.json", weights=tmp_path / "nothing.chunkc")


def test_bad_plan_files_are_refused_by_name(tmp_path):
    path = tmp_path / "p.json"
    chunkc.save_plan(attention().plan, path)
    data = json.loads(path.read_text())

    def write(**changes):
        path.write_text(json.dumps({**data, **changes}))

    write(format="something else")
    with pytest.raises(ChunkcError, match="is not a chunkc plan file"):
        chunkc.load_plan(path)
    write(version=99)
    with pytest.raises(ChunkcError, match="plan format version 99"):
        chunkc.load_plan(path)
    write(weights="gone.npz")
    with pytest.raises(ChunkcError, match="gone.npz, which is missing"):
        chunkc.load_plan(path)
    bad_region = dict(data["regions"][0], nodes=["no_such_node"])
    write(regions=[bad_region])
    with pytest.raises(ChunkcError, match="region 0 names nodes the graph does not have: no_such_node"):
        chunkc.load_plan(path)
    write(regions=[dict(data["regions"][0], chunk_size="L +")])
    with pytest.raises(ChunkcError, match="region 0 chunk_size: 'L \\+' is not a size"):
        chunkc.load_plan(path)
    path.write_text("{not json")
    with pytest.raises(ChunkcError, match="cannot read"):
        chunkc.load_plan(path)


def test_a_plan_on_a_rewritten_graph_keeps_only_its_new_constants_beside_the_shared_weights(tmp_path):
    """A plan made on a variant of the graph (here one of its weights split in two parts) shares
    the saved graph's weights and writes only the constants the variant added."""
    case = attention(d=64, heads=4)
    chunkc.save(case.graph, tmp_path / "graph.chunkc")
    plan = chunkc.autochunk(case.graph, 0.3, sizes={"B": 1, "L": 256}, progress=False)
    variant = plan.graph.copy()
    weight = next(c for c in variant.constants if c.data is not None)
    part = variant.add_constant(weight.name + "_part0", np.asarray(weight.data).copy())
    plan = dataclasses.replace(plan, graph=variant)
    files = chunkc.save_plan(plan, tmp_path / "p.json", weights=tmp_path / "graph.chunkc")
    assert files == [str(tmp_path / "p.json"), str(tmp_path / "p.json.npz")]
    with np.load(tmp_path / "p.json.npz") as npz:
        assert npz.files == [part.name]
    loaded = chunkc.load_plan(tmp_path / "p.json")
    np.testing.assert_array_equal(next(c for c in loaded.graph.constants if c.name == part.name).data, weight.data)
    _same_plan(plan, loaded)
