"""The per-query-row curve of fused attention (KernelTable.attention, OpDef.rows_kernel): read,
interpolated, priced on chunks of an attention's queries, and followed by the selection."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

import chunkc  # noqa: E402
from chunkc import ops as O  # noqa: E402
from chunkc.calibrate import main as calibrate_main, measure_attention  # noqa: E402
from chunkc.ir.sizes import evaluate  # noqa: E402
from chunkc.passes.cost import (TABLE_FORMAT, KernelTable, TimeModel, find_table, table_key,  # noqa: E402
                                table_path)
from test_cost import synthetic_table  # noqa: E402

# per query row and key: 3 ns on 32 rows, 2 on 128, 1 from 1024 on
CURVE = ((32.0, 3e-9), (128.0, 2e-9), (1024.0, 1e-9))


def curved(table: KernelTable, kernel: str = "float") -> KernelTable:
    return dataclasses.replace(table, attention=((kernel, CURVE),))


def sdpa_graph(heads: int = 1, mask: str | None = "float") -> chunkc.Graph:
    """exp(SDPA(q, k, v, mask)) over L tokens, heads of 64 (``mask``: "float", "bool", "causal"
    (is_causal) or None)."""
    g = chunkc.Graph("sdpa")
    q, k, v = (g.add_input(n, "f32", (1, heads, "L", 64)) for n in "qkv")
    ins = [q, k, v]
    if mask in ("float", "bool"):
        ins.append(g.add_input("m", "f32" if mask == "float" else "bool", ("L", "L")))
    g.set_outputs(O.exp(O.scaled_dot_product_attention(*ins, is_causal=mask == "causal")))
    return g


def test_the_curve_is_read_back_and_interpolated_on_a_log_scale_of_the_rows(tmp_path):
    table = curved(synthetic_table())
    loaded = KernelTable.load(table.save(tmp_path / "t.json"))
    assert loaded == table and loaded.attention_curve("float") == CURVE
    assert loaded.rows_factor("float", 128, 1024) == pytest.approx(2.0)
    assert loaded.rows_factor("float", 64, 1024) == pytest.approx(2.5)  # halfway from 32 to 128 (log)
    assert loaded.rows_factor("float", 362, 1024) == pytest.approx(1.5, rel=1e-2)  # sqrt(128 * 1024)
    assert loaded.rows_factor("float", 8, 1024) == pytest.approx(3.0)  # flat below the smallest
    assert loaded.rows_factor("float", 2048, 4096) == 1.0  # flat beyond the largest
    assert loaded.rows_factor("bool", 128, 1024) == 1.0  # no curve for it
    assert loaded.rows_factor("float", 4096, 1024) == 1.0  # never cheaper than the whole call
    bad = json.loads(table.to_json())
    bad["attention"] = [["float", []]]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(chunkc.ChunkcError, match=r"bad\.json: not a chunkc kernel table .*attention curve is empty"):
        KernelTable.load(tmp_path / "bad.json")


def test_a_table_of_format_5_is_still_read_and_prices_attention_as_before(tmp_path, monkeypatch):
    """A format-5 table (no attention curves) is found when no table of the current format is, and
    ``--upgrade`` adds the curves to it as a table of the current format, keeping its other figures."""
    monkeypatch.setenv("CHUNKC_CACHE_DIR", str(tmp_path))
    torch.set_num_threads(1)
    old = dataclasses.replace(synthetic_table(key=table_key(1, table_format=5)), format=5)
    data = json.loads(old.to_json())
    del data["attention"]  # as format 5 wrote it
    path = table_path(1, table_format=5)
    path.write_text(json.dumps(data))
    found = find_table(1)
    assert found == old and found.attention == () and found.format == 5
    g = sdpa_graph()
    plain = TimeModel(g, {"L": 2048}, synthetic_table())
    assert TimeModel(g, {"L": 2048}, found).times == plain.times
    monkeypatch.setattr("chunkc.calibrate.measure_attention", lambda say=None: (("float", CURVE),))
    rows, light = (("softmax", ((16.0, 2e-9), (1024.0, 1e-9))),), (("le", 1e9),)
    monkeypatch.setattr("chunkc.calibrate._row_costs", lambda widths, samples, say: rows)
    monkeypatch.setattr("chunkc.calibrate._elementwise_rates", lambda call_s, samples, say: light)
    assert calibrate_main(["--threads", "1", "--upgrade"]) == 0
    new = find_table(1)
    assert new.format == TABLE_FORMAT and new.attention == (("float", CURVE),) and new.key == table_key(1)
    assert (new.row_costs, new.elementwise_rates) == (rows, light)  # what it lacked, measured alike
    assert dataclasses.replace(new, key=old.key, format=5, attention=(), row_costs=(), elementwise_rates=(),
                               notes=old.notes) == old
    assert table_path(1).exists() and path.exists()  # the old file is left for older versions


def test_a_quick_measured_attention_curve_per_mask_is_non_increasing_per_row():
    torch.set_num_threads(1)
    found = dict(measure_attention(quick=True, samples=3))
    assert set(found) == {"none", "bool", "float", "causal"}
    for kernel, curve in found.items():
        assert [r for r, _ in curve] == [32.0, 256.0, 1024.0]  # causal: its last point is the whole square
        values = [c for _, c in curve]
        assert all(c > 0 for c in values)
        if kernel != "causal":  # the whole causal call computes blocks across the diagonal that chunks skip
            assert values == sorted(values, reverse=True)


def _chunked_seconds(model: TimeModel, chunk: int, extent: int = 2048) -> float:
    g = model.graph
    sdpa = next(i for i, n in enumerate(g.nodes) if n.op.name == "scaled_dot_product_attention")
    node = g.nodes[sdpa]
    chunked = {node.inputs[0]: (2, 1), node.outputs[0]: (2, 1)}
    if len(node.inputs) > 3:
        chunked[node.inputs[3]] = (0, 1)
    return model.loop_seconds([sdpa], chunked, [node.outputs[0]], extent, chunk)


def test_a_chunk_of_128_query_rows_costs_more_per_row_than_one_of_1024_by_the_curve():
    """On the curve, a 128-row chunk costs twice as much per row as a 1024-row one; the call's other
    costs (its memory, the loop's bookkeeping) are the same at both, so the loop over all rows costs
    nearly twice as much.  Without a curve (a table of format 5) both cost the same, and a chunk of
    the queries of an attention the curve does not cover (no mask here) is not repriced."""
    table = synthetic_table(gemm=((1.0, 1e8), (32.0, 4e9)))
    model = TimeModel(sdpa_graph(), {"L": 2048}, curved(table))
    small, large = _chunked_seconds(model, 128), _chunked_seconds(model, 1024)
    whole = model.times[0]
    assert large == pytest.approx(whole, rel=0.02)
    assert small / large == pytest.approx(2.0, rel=0.05)
    flat = TimeModel(sdpa_graph(), {"L": 2048}, table)
    assert _chunked_seconds(flat, 128) == pytest.approx(_chunked_seconds(flat, 1024), rel=0.02)
    unmasked = TimeModel(sdpa_graph(mask=None), {"L": 2048}, curved(table))
    assert _chunked_seconds(unmasked, 128) == pytest.approx(_chunked_seconds(unmasked, 1024), rel=0.02)
    unmasked = TimeModel(sdpa_graph(mask=None), {"L": 2048}, curved(table, "none"))
    assert _chunked_seconds(unmasked, 128) / _chunked_seconds(unmasked, 1024) == pytest.approx(2.0, rel=0.05)


def test_the_op_records_name_the_curve_by_the_mask_the_kernel_gets():
    kinds = {}
    for mask in (None, "bool", "float", "causal"):
        g = sdpa_graph(heads=4, mask=mask)
        kinds[mask] = TimeModel(g, {"L": 256}, synthetic_table()).facts[0].rows_kernel
    assert kinds == {None: "none", "bool": "bool", "float": "float", "causal": "causal"}
    g = chunkc.Graph("three_axes")  # the math path: not the flash kernel's curve
    q, k, v = (g.add_input(n, "f32", (4, "L", 64)) for n in "qkv")
    g.set_outputs(O.scaled_dot_product_attention(q, k, v))
    assert TimeModel(g, {"L": 256}, synthetic_table()).facts[0].rows_kernel == ""


def test_the_selection_takes_a_larger_query_chunk_when_the_curve_prices_small_ones():
    """One attention over 2048 tokens with a float mask: the table's cache step at 32 KiB makes a
    chunk of 128 query rows (32 KiB of output) the cheapest without a curve; with the curve (twice
    the time per row at 128 rows as from 1024 on), the selection takes the largest chunk the budget
    allows instead."""
    table = synthetic_table(gemm=((1.0, 1e8), (32.0, 4e9)),
                            stream=((4096.0, 1e-10), (float(32 << 10), 1e-10), (float(256 << 10), 1e-9)))
    g = sdpa_graph()
    chunks = {}
    for name, t in (("flat", table), ("curve", curved(table))):
        plan = chunkc.autochunk(g, 0.8, sizes={"L": 2048}, machine=t, progress=False)
        assert plan.estimated_peak_bytes <= plan.budget_bytes
        (region,) = plan.regions
        assert "scaled_dot_product_attention" in region.nodes
        chunks[name] = evaluate(region.chunk_size, plan.sizes)
    assert chunks["flat"] == 128 and chunks["curve"] >= 512
