"""Helpers every measurement shares: a quiet garbage collector, the arrays of a call."""

from __future__ import annotations

import sys
from typing import Any, Iterable

from ..collector import collector_paused


# no collection inside a measured call: garbage from before it would be freed mid-call and
# counted as the call's own frees
quiet_gc = collector_paused


def leaves(obj) -> Iterable[Any]:
    """The leaves of nested lists, tuples and dicts."""
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from leaves(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from leaves(x)
    else:
        yield obj


def torch_if_loaded():
    """The torch module if something imported it already (measuring never imports it)."""
    return sys.modules.get("torch")


def grad_mode(grad: bool):
    """Autograd on (a training step measured: ``fn`` runs forward and backward) or off."""
    import torch
    return torch.enable_grad() if grad else torch.no_grad()


def weights_of(fn, extra: Iterable[Any]) -> list:
    """Tensors that are weights: a module's parameters and buffers, and those given."""
    import torch
    found = list(extra)
    if isinstance(fn, torch.nn.Module):
        found.extend(fn.parameters())
        found.extend(fn.buffers())
    return found
