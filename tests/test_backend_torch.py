"""The PyTorch backend: the nn.Module (weights as buffers, save and load); the
torch.compile backend; the grad modes, dtype promotion and the opaque-op lookup.
Every op's lowering is checked on the op database by tests/test_op_backends.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import chunkc
from chunkc.backends.host_call import TORCH_NATIVE
from chunkc import ops as O
from chunkc.backends import compile as compile_graph, emit_source, load_module, save_module
from chunkc.errors import ChunkcError


# -- opaque ops ------------------------------------------------------------------------------


def test_opaque_runs_a_validated_torch_op():
    g = chunkc.Graph("o")
    x = g.add_input("x", "f32", ("L", 4))
    y = g.op("opaque", x, target="aten::relu.default", result_types=("f32[L, 4]",), name="r")
    vals, idx = g.op("opaque", y, target="aten::sort.default", result_types=("f32[L, 4]", "i64[L, 4]"), name="s")
    g.set_outputs(O.exp(vals), idx)
    src = emit_source(g, None, "torch")
    assert "op_relu = rt.torch_op('aten::relu.default')" in src and "s_0, s_1 = op_sort(r)" in src
    t = torch.randn(3, 4)
    out, ind = compile_graph(g)(t)
    ref_v, ref_i = torch.sort(torch.relu(t))
    torch.testing.assert_close(out, ref_v.exp())
    torch.testing.assert_close(ind, ref_i)


@pytest.mark.parametrize("target", ["aten::relu.default; import os", "os.system", "aten::relu.default()", "__import__"])
def test_opaque_target_text_is_never_code(target):
    from chunkc.backends.torch_runtime import parse_target, torch_op
    with pytest.raises(ChunkcError, match="is not an operator name"):
        parse_target(target)
    with pytest.raises(ChunkcError):
        torch_op(target)


def test_opaque_result_count_must_match_schema():
    g = chunkc.Graph("o")
    x = g.add_input("x", "f32", (3,))
    g.set_outputs(*g.op("opaque", x, target="aten::relu.default", result_types=("f32[3]", "f32[3]")))
    with pytest.raises(ChunkcError, match="returns 1 value"):
        emit_source(g, None, "torch")


# -- the module: weights, save and load, grad modes ---------------------------------------------


def _mlp():
    from backend_cases import mlp
    return mlp()


def test_module_holds_weights_as_buffers_and_round_trips(tmp_path):
    case = _mlp()
    m = compile_graph(case.graph, case.plan, "torch")
    assert isinstance(m, torch.nn.Module)
    assert sorted(m.state_dict()) == ["b1", "w1", "w2"]  # the 0-d scalar is written as a literal
    x = torch.from_numpy(case.inputs({"B": 2, "L": 9})[0])
    expected = m(x)
    files = save_module(m, tmp_path / "mlp_chunked.py")
    assert [p.rsplit("/", 1)[1] for p in files] == ["mlp_chunked.py", "mlp_chunked.pt"]
    loaded = load_module(tmp_path / "mlp_chunked.py")
    torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    assert loaded.chunkc_source == m.chunkc_source
    # the file is a plain module: import it and call its load()
    import importlib.util
    spec = importlib.util.spec_from_file_location("mlp_chunked_plain", tmp_path / "mlp_chunked.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.testing.assert_close(mod.load()(x), expected, rtol=0, atol=0)


def test_save_module_refuses_other_modules(tmp_path):
    with pytest.raises(ChunkcError, match="made by chunkc.compile"):
        save_module(torch.nn.Linear(2, 2), tmp_path / "x.py")


def test_grad_modes():
    case = _mlp()
    x = torch.from_numpy(case.inputs({"B": 1, "L": 4})[0])
    inf = compile_graph(case.graph, None, "torch")
    assert inf(x).is_inference()
    ng = compile_graph(case.graph, None, "torch", grad_mode="no_grad")
    y = ng(x)
    assert not y.is_inference() and not y.requires_grad
    with pytest.raises(ChunkcError, match="grad_mode"):
        compile_graph(case.graph, None, "torch", grad_mode="backward")
    train = compile_graph(case.graph, None, "torch", grad_mode="train")  # chunkc/backends/torch_train.py
    xg = x.clone().requires_grad_()
    y = train(xg)
    assert y.requires_grad
    y.sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape


def test_mixed_dtype_promotion_follows_the_ir():
    g = chunkc.Graph("promo")
    x = g.add_input("x", "f32", (3,))
    h = g.add_input("h", "f16", (3,))
    k = g.add_constant("k", np.float64(0.5))
    y = O.add(x, k, name="y")  # IR: f32 + f64 -> f64 (torch alone would keep f32)
    z = O.matmul(h, x, name="z")  # torch.matmul needs one dtype: the IR's result
    g.set_outputs(y, z)
    yv, zv = compile_graph(g)(torch.ones(3), torch.ones(3, dtype=torch.float16))
    assert yv.dtype == torch.float64 and zv.dtype == torch.float32
    assert float(zv) == 3.0


# -- torch.compile backend ---------------------------------------------------------------------------


class TinyBlock(torch.nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d)
        self.fc1 = torch.nn.Linear(d, 4 * d)
        self.fc2 = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        h = self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))
        return x + torch.softmax(h, dim=-1)


def _frontend_ready() -> bool:
    try:
        import frontends.pytorch  # noqa: F401
    except ImportError:
        return False
    return hasattr(frontends.pytorch, "from_torch")


@pytest.mark.skipif(not _frontend_ready(), reason="frontends.pytorch.from_torch is not available yet")
def test_dynamo_backend_matches_eager():
    from chunkc.backends.dynamo import DynamoStats
    torch.manual_seed(0)
    model = TinyBlock().eval()
    stats = DynamoStats()
    compiled = torch.compile(model, backend=chunkc.dynamo_backend(budget=None, stats=stats), fullgraph=True)
    with torch.no_grad():
        for n in (8, 8, 13):
            x = torch.randn(2, n, 16)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    assert stats.graphs >= 1 and "F.linear" in stats.sources[0]
    torch._dynamo.reset()


class TinyAttention(torch.nn.Module):
    def __init__(self, d: int = 32, heads: int = 4):
        super().__init__()
        self.qkv, self.o, self.heads = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d), heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        s = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return self.o((s @ v).transpose(1, 2).reshape(b, n, d))


@pytest.mark.skipif(not _frontend_ready(), reason="frontends.pytorch.from_torch is not available yet")
def test_dynamo_backend_chunks_under_a_budget():
    """dynamic=True: one compiled graph with a symbolic length, chunked, serves several lengths."""
    from chunkc.backends.dynamo import DynamoStats
    torch.manual_seed(0)
    model = TinyAttention().eval()
    stats = DynamoStats()
    compiled = torch.compile(model, backend=chunkc.dynamo_backend(budget=0.3, stats=stats, progress=False),
                             dynamic=True)
    with torch.no_grad():
        for n in (128, 77):
            x = torch.randn(1, n, 32)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    assert stats.graphs == 1 and stats.plans[0].regions
    assert "rt.run_chunks(chunk_region_0, extent, chunk)" in stats.sources[0]
    assert "x_dim1 = x.shape[1]" in stats.sources[0]
    torch._dynamo.reset()
