"""The memory of one training step: a module's forward, then its backward.

Gradient buffers exist before the step, as they do from the second step of a training
loop on (``zero_grad(set_to_none=False)``): like the weights and the inputs they are
allocated before the measured call, so the allocator-level measure does not count them,
and the step's gradients accumulate into them.  The outputs, what autograd saves, the
backward's temporaries and every gradient of an intermediate value are counted.
"""

from __future__ import annotations

from .allocator import measure_allocator_peak
from .gpu import measure_cuda_peak


def measure_step(module, *args, grad_outputs=None, device: str | None = None) -> int:
    """Bytes allocated at the peak of one training step of ``module`` on ``args`` above what
    existed before it: the forward, then the backward from ``grad_outputs`` (one per output;
    by default seeded random tensors), with every parameter and floating-point input
    differentiated (PyTorch only: CPU or CUDA)."""
    import torch

    inputs = tuple(a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point()
                   else a for a in args)
    params = [p for p in module.parameters() if p.requires_grad]
    for t in params + [a for a in inputs if isinstance(a, torch.Tensor) and a.requires_grad]:
        t.grad = torch.zeros_like(t)
    if grad_outputs is None:
        with torch.no_grad():
            outs = module(*inputs)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        g = torch.Generator(device=outs[0].device).manual_seed(0)
        grad_outputs = tuple(torch.randn(o.shape, dtype=o.dtype, device=o.device, generator=g) for o in outs)
        del outs
    grad_outputs = tuple(grad_outputs)

    def step(*call_args):
        outs = module(*call_args)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        if len(outs) != len(grad_outputs):
            raise ValueError(f"measure_step: the module returned {len(outs)} outputs, "
                             f"grad_outputs has {len(grad_outputs)}")
        torch.autograd.backward(tuple(outs), grad_outputs)

    if device is None:
        tensors = [t for t in list(module.parameters()) + list(inputs) if isinstance(t, torch.Tensor)]
        device = "cuda" if any(t.is_cuda for t in tensors) else "cpu"
    if device == "cpu":
        return measure_allocator_peak(step, inputs, grad=True)
    if device == "cuda":
        return measure_cuda_peak(step, inputs, grad=True)
    raise ValueError(f"measure_step: PyTorch on 'cpu' or 'cuda', not {device!r}")


__all__ = ["measure_step"]
