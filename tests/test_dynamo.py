"""chunkc as a torch.compile backend, for inference: it cuts the measured peak as chunkc.compile
does, its outputs do not require grad, and new sizes in the dynamic range do not recompile."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("frontends.pytorch")

import chunkc  # noqa: E402
from chunkc.backends.dynamo import DynamoStats  # noqa: E402


class Attention(torch.nn.Module):
    def __init__(self, d: int = 32, heads: int = 4):
        super().__init__()
        self.qkv, self.o, self.heads = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d), heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        s = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return self.o((s @ v).transpose(1, 2).reshape(b, n, d))


@pytest.fixture
def compiled():
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = Attention().eval()
    stats = DynamoStats()
    yield model, torch.compile(model, backend=chunkc.dynamo_backend(budget=0.3, stats=stats), dynamic=True), stats
    torch._dynamo.reset()


def test_under_inference_it_cuts_the_measured_peak_as_compile_does(compiled):
    model, fn, stats = compiled
    x = torch.randn(1, 512, 32)
    with torch.no_grad():
        torch.testing.assert_close(fn(x), model(x), rtol=1e-4, atol=1e-5)
        eager = chunkc.measure_peak(model, x)
        measured = chunkc.measure_peak(fn, x)  # the compiled artifact's ops, not an eager rerun
    plan = stats.plans[0]
    assert plan.backend == "torch" and plan.regions
    # the allocator also sees 0-d tensors wrapping Python numbers: a few bytes
    assert plan.estimated_peak_bytes <= measured <= plan.estimated_peak_bytes + 64
    assert plan.estimated_peak_bytes <= plan.budget_bytes
    assert measured < 0.5 * eager


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_outputs_do_not_require_grad(compiled, mode):
    _, fn, _ = compiled
    with torch.no_grad() if mode == "no_grad" else torch.inference_mode():
        y = fn(torch.randn(1, 64, 32))
    assert not y.requires_grad


def test_with_gradients_enabled_autograd_still_works(compiled):
    model, fn, _ = compiled
    x = torch.randn(1, 64, 32, requires_grad=True)
    with pytest.warns(UserWarning, match="chunkc.dynamo_backend is for inference"):
        y = fn(x)
    assert y.requires_grad
    y.sum().backward()
    assert x.grad is not None and model.qkv.weight.grad is not None


def test_new_sizes_in_the_dynamic_range_do_not_recompile(compiled):
    from torch._dynamo.utils import counters
    _, fn, stats = compiled
    with torch.no_grad():
        for n in (128, 77, 300, 513, 64):
            fn(torch.randn(1, n, 32))
    assert stats.graphs == 1 and counters["stats"]["unique_graphs"] == 1


def test_the_default_dynamic_setting_recompiles_once_for_a_second_size():
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    stats = DynamoStats()
    fn = torch.compile(Attention().eval(), backend=chunkc.dynamo_backend(budget=0.3, stats=stats))
    with torch.no_grad():
        for n in (128, 77, 300, 513):  # static first, then automatic dynamic shapes
            fn(torch.randn(1, n, 32))
    assert stats.graphs == 2 and counters["stats"]["unique_graphs"] == 2
    torch._dynamo.reset()


def test_only_the_torch_backend():
    with pytest.raises(chunkc.ChunkcError, match="runs the torch backend"):
        chunkc.dynamo_backend(budget=0.3, backend="numpy")
