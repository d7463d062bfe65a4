"""What keeps the search fast without changing its answers: walks that stop where nothing more
can join a loop, region models not built when no chunk can fit, kernel size classes asked
once, workspace records that prove a node takes none.  Behaviour, not time: the answers are
compared with the long way round, and the work skipped is counted."""

from __future__ import annotations

import types

import numpy as np

import chunkc
from chunkc import ops as O
from chunkc.ir.dtypes import DType
from chunkc.ir.kernel_workspace import STRICT_CASTS, TorchWorkspace, needed_workspace, promoted_operands
from chunkc.ir.registry import all_ops
from chunkc.ir.types import TensorType
from chunkc.passes import search as S
from chunkc.passes.cost import Machine, TimeModel
from chunkc.passes.selection import SearchSpace


def _chain_after_unrelated_work(n_unrelated: int = 40) -> chunkc.Graph:
    """A long chain on one input, then a short chunkable chain on another."""
    g = chunkc.Graph("late_chain")
    a = g.add_input("a", "f32", ("L", 8))
    b = g.add_input("b", "f32", ("L", 8))
    h = a
    for k in range(n_unrelated):
        h = O.tanh(h, name=f"t{k}")
    y = O.exp(O.relu(b, name="r"), name="e")
    g.set_outputs(h, O.add(y, 1.0, name="out"))
    return g


class _RecordingNodes(list):
    """A schedule that notes which positions are read."""

    def __init__(self, nodes):
        super().__init__(nodes)
        self.read: set[int] = set()

    def __getitem__(self, i):
        self.read.add(i)
        return super().__getitem__(i)


def test_a_walk_stops_before_the_first_node_that_touches_a_sliced_value():
    g = _chain_after_unrelated_work()
    index = S.GraphIndex(g)
    end = next(i for i, n in enumerate(g.nodes) if n.name == "out")
    nodes = _RecordingNodes(g.nodes)
    index.graph = types.SimpleNamespace(nodes=nodes)
    cands = list(S.walk_regions(index, end, 0))
    # the loop's regions: out, e..out, r..out; the 40 tanh nodes before them are never looked at
    assert [tuple(g.nodes[i].name for i in c.loop) for c in cands] == [("out",), ("e", "out"), ("r", "e", "out")]
    assert {g.nodes[i].name for i in nodes.read} <= {"r", "e", "out"}, sorted(nodes.read)


def test_first_touch_is_the_producer_or_the_first_reader():
    g = _chain_after_unrelated_work(3)
    index = S.GraphIndex(g)
    pos = {n.name: i for i, n in enumerate(g.nodes)}
    b = g.inputs[1]
    assert index.first_touch[b] == pos["r"]  # a graph input: its first reader
    e = g.node("e").outputs[0]
    assert index.first_touch[e] == pos["e"]  # made by a node: that node


def test_no_region_model_is_built_when_the_bytes_before_its_span_exceed_the_target():
    g = chunkc.Graph("mlp")
    x = g.add_input("x", "f32", ("L", 64))
    w = g.add_constant("w", np.ones((64, 256), dtype=np.float32))
    h = O.relu(O.matmul(x, w, name="up"), name="act")
    g.set_outputs(O.exp(h, name="out"))
    space = SearchSpace(g, {"L": 512})
    end = next(i for i, n in enumerate(g.nodes) if n.name == "out")
    cands = space._walk(end, 0)
    assert cands
    for cand in cands:
        before = space.before[cand.start]
        assert space.largest_chunk(cand, before - 1) is None
        assert id(cand) not in space._memory_cache  # answered without the region's model
        target = max(space.during) // 2
        if before <= target:
            assert space.largest_chunk(cand, target) == space.memory(cand).largest_chunk(target)


class _CountingMachine(Machine):
    calls: list

    def size_classes(self):
        self.calls.append(1)
        return super().size_classes()


def test_the_kernel_size_classes_are_asked_once_per_time_model():
    machine = _CountingMachine()
    object.__setattr__(machine, "calls", [])
    g = chunkc.Graph("pointwise")
    x = g.add_input("x", "f32", ("L", 64))
    g.set_outputs(O.exp(O.tanh(x, name="t"), name="out"))
    times = TimeModel(g, {"L": 4096}, machine)
    index = S.GraphIndex(g)
    cands = list(S.walk_regions(index, len(g.nodes) - 1, 0))
    for cand in cands:
        for largest in (4096, 100, 7):
            assert times.chunk_options(cand, largest)[0] == (largest, None)
    assert len(machine.calls) == 1


def test_casts_only_workspace_is_none_when_the_inputs_have_the_output_dtype():
    f32, f16 = TensorType(DType.float32, (4, 8)), TensorType(DType.float16, (4, 8))
    fn = promoted_operands((0, 1))
    assert needed_workspace(fn, [DType.float32, DType.float32], [DType.float32]) is None
    assert needed_workspace(fn, [DType.float16, DType.float32], [DType.float32]) is fn
    assert fn([f16, f32], {}, [f32]) > 0  # the conversion it then still counts
    # where: only the branches are converted; the bool condition does not count
    where = promoted_operands((1, 2), aten_casts=True)
    assert needed_workspace(where, [DType.bool, DType.float32, DType.float32], [DType.float32]) is None
    assert needed_workspace(STRICT_CASTS, [DType.float16, DType.float32], [DType.float32]) is STRICT_CASTS
    undeclared = TorchWorkspace(aten=lambda ins, a, outs: 0)
    assert needed_workspace(undeclared, [DType.float32], [DType.float32]) is undeclared
    assert needed_workspace(fn, [DType.float32], []) is None  # no output: nothing to count in


def test_every_casts_only_declaration_holds_on_the_op_samples():
    """A record that says its workspace is conversions only takes none on any of its samples
    whose declared inputs have the output's dtype (the estimator then skips the node)."""
    from opdb import all_infos, build, samples_of

    infos = all_infos()
    checked = set()
    for name, rec in all_ops().items():
        tws = rec.torch_workspace
        if not isinstance(tws, TorchWorkspace) or not tws.casts_only or name not in infos:
            continue
        for sample in samples_of(name):
            try:
                _, node = build(name, sample.inputs, sample.attrs)
            except Exception:
                continue  # a sample of an error
            if not node.outputs:
                continue
            ins = [v.type for v in node.inputs]
            outs = [o.type for o in node.outputs]
            if needed_workspace(tws, [t.dtype for t in ins], [o.dtype for o in outs]) is None:
                assert tws(ins, node.attrs, outs) == 0, (name, sample)
                checked.add(name)
    assert {"add", "mul", "where", "linear", "addmm"} <= checked, checked
