"""The unchunked generated program runs no more sequence-squared kernels than eager PyTorch.

On the attention models of the zoo, imported with their libraries' defaults and canonicalized
(the default import), each ATen kernel that reads an [.., L, L] tensor (scores, masks, position
biases: the work that grows with L^2) runs at most as often in the generated program as in the
eager module, one call each, counted with torch.profiler.  Before the ``where``/``add``
canonicalizations, T5's relative position bias went through a [1, H, L, L] ``where`` with an
all-true mask per layer, and ViT added an all-zero [1, 1, L, L] mask to every layer's scores;
eager runs neither (transformers passes no mask when nothing is padded)."""

from __future__ import annotations

import collections

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import chunkc  # noqa: E402
from chunkc import zoo  # noqa: E402

# Ops that move no data (views, dispatch wrappers whose work appears as the kernels they call).
NOT_KERNELS = {"aten::as_strided", "aten::view", "aten::reshape", "aten::permute", "aten::transpose",
               "aten::unsqueeze", "aten::expand", "aten::t", "aten::select", "aten::slice", "aten::_reshape_alias",
               "aten::_unsafe_view", "aten::resolve_conj", "aten::result_type", "aten::to", "aten::dropout",
               "aten::contiguous", "aten::detach", "aten::alias", "aten::squeeze", "aten::linear", "aten::matmul",
               "aten::scaled_dot_product_attention", "aten::softmax", "aten::empty", "aten::empty_like",
               "aten::empty_strided", "aten::expand_as", "aten::view_as", "aten::type_as", "aten::as_strided_"}
# The same kernel under another name (eager's T5 layer norm squares with pow, torch.export with mul).
# A flip is a copy with one axis reversed: the one copy that spreads a relative position table over
# [.., L, L] (chunkc.passes.difference_tables), where eager computes the bias with a dozen kernels.
SAME_KERNEL = {"aten::add_": "aten::add", "aten::min": "aten::minimum", "aten::pow": "aten::mul",
               "aten::flip": "aten::copy_"}

# (zoo model, the size given to make_inputs, the sequence length L it makes)
MODELS = {
    "t5_encoder": (lambda: zoo.t5_encoder(), 48, 48),
    "vit": (lambda: zoo.vit(), 64, 17),  # (64 / 16)^2 patches and the class token
    "gpt2_eager": (lambda: zoo.gpt2(), 48, 48),
    "bert": (lambda: zoo.bert(), 48, 48),
}


def square_kernels(fn, args, length: int) -> collections.Counter:
    """Kernels of one call of ``fn`` that read a tensor with two axes of size ``length``."""
    fn(*args)  # warm up (first-call allocations, lazy initialisation)
    with torch.profiler.profile(record_shapes=True) as prof:
        fn(*args)
    counts: collections.Counter = collections.Counter()
    for event in prof.events():
        if not event.name.startswith("aten::") or event.name in NOT_KERNELS:
            continue
        if any(len(shape) >= 2 and list(shape).count(length) >= 2 for shape in event.input_shapes
               if isinstance(shape, list)):
            counts[SAME_KERNEL.get(event.name, event.name)] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("key", MODELS)
def test_generated_program_runs_no_more_square_kernels_than_eager(key):
    torch.set_num_threads(1)
    factory, size, length = MODELS[key]
    case = factory()
    graph = chunkc.from_torch(case.module, case.example_inputs(), dynamic_shapes=case.dynamic_shapes())
    generated = chunkc.compile(graph, backend="torch")
    args = case.make_inputs(size)

    def eager(*a):
        with torch.inference_mode():
            return case.module(*a)

    want, got = eager(*args), generated(*args)
    want = want[0] if isinstance(want, (tuple, list)) else want
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    eager_counts, generated_counts = square_kernels(eager, args, length), square_kernels(generated, args, length)
    assert eager_counts, f"{key}: no kernel on [.., {length}, {length}] in eager: the count is not measuring"
    extra = generated_counts - eager_counts
    assert not extra, (f"{key}: the generated program runs kernels on [.., L, L] tensors that eager does not: "
                       f"{dict(extra)} (generated {dict(generated_counts)}, eager {dict(eager_counts)})")
