"""A ``torch.compile`` backend: chunking without leaving PyTorch.

    model = torch.compile(model, backend=chunkc.dynamo_backend(budget=0.3))

Dynamo hands the backend an FX ``GraphModule`` whose placeholders are the
model's tensors (inputs, and with inlined nn.Modules its parameters and
buffers) and, once it has seen two sizes, symbolic ints.  The backend wraps the
GraphModule in a module that takes the tensors only (each symbolic int is read
from a tensor's shape), imports that through the PyTorch frontend
(``chunkc.from_torch``, i.e. ``torch.export``), plans the chunks for the sizes at
hand, and runs the generated torch module.  Parameters and buffers arrive as
graph inputs: they are not activation memory, and they are used whole unless
the plan slices them.

The generated code runs under ``torch.no_grad`` (inference only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..errors import ChunkcError


@dataclass
class DynamoStats:
    """What the backend did, per compiled graph (for tests and reports)."""

    graphs: int = 0
    plans: list = field(default_factory=list)  # the Plan (or None) of each compiled graph
    sources: list = field(default_factory=list)  # the generated source of each


class _TensorsOnly(torch.nn.Module):
    """Calls ``gm`` with its symbolic-int arguments read from tensor shapes."""

    def __init__(self, gm: torch.fx.GraphModule, layout: Sequence[tuple[str, int, int]]):
        super().__init__()
        self.gm = gm
        # per placeholder: ("tensor", index among tensors, 0) or ("size", tensor index, dim) or ("int", value, 0)
        self.layout = list(layout)

    def forward(self, *tensors):
        args = []
        for kind, a, b in self.layout:
            if kind == "tensor":
                args.append(tensors[a])
            elif kind == "size":
                args.append(tensors[a].shape[b])
            else:
                args.append(a)
        return self.gm(*args)


def _layout(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]):
    """Where each placeholder comes from, and torch.export dynamic shapes for the tensors."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(example_inputs):
        raise ChunkcError(f"dynamo backend: {len(placeholders)} placeholders but {len(example_inputs)} example inputs")
    tensors: list[torch.Tensor] = []
    tensor_meta: list[Any] = []
    for node, ex in zip(placeholders, example_inputs):
        if isinstance(ex, torch.Tensor):
            tensors.append(ex)
            tensor_meta.append(node.meta.get("example_value"))
    layout, dynamic = [], [dict() for _ in tensors]
    k = 0
    for node, ex in zip(placeholders, example_inputs):
        if isinstance(ex, torch.Tensor):
            layout.append(("tensor", k, 0))
            k += 1
            continue
        if isinstance(ex, torch.SymInt) or isinstance(node.meta.get("example_value"), torch.SymInt):
            sym = node.meta.get("example_value", ex)
            found = _find_dim(sym, tensor_meta)
            if found is None:
                raise ChunkcError(f"dynamo backend: symbolic size {node.name} is not the size of any tensor "
                                  "axis; compile with dynamic=False")
            t, d = found
            layout.append(("size", t, d))
            dynamic[t][d] = torch.export.Dim.DYNAMIC
            continue
        if isinstance(ex, int) and not isinstance(ex, bool):
            layout.append(("int", int(ex), 0))
            continue
        raise ChunkcError(f"dynamo backend: placeholder {node.name} of type {type(ex).__name__} is not supported")
    # every tensor axis whose traced size is symbolic stays dynamic
    for t, meta in enumerate(tensor_meta):
        if isinstance(meta, torch.Tensor):
            for d, s in enumerate(meta.shape):
                if isinstance(s, torch.SymInt):
                    dynamic[t][d] = torch.export.Dim.DYNAMIC
    return layout, tensors, dynamic


def _find_dim(sym, tensor_meta) -> tuple[int, int] | None:
    for t, meta in enumerate(tensor_meta):
        if not isinstance(meta, torch.Tensor):
            continue
        for d, s in enumerate(meta.shape):
            if isinstance(s, torch.SymInt) and str(s.node.expr) == str(sym.node.expr):
                return t, d
    return None


def _concrete(t: torch.Tensor) -> torch.Tensor:
    """A real tensor with ``t``'s shape (dynamo may pass fake ones)."""
    from torch._subclasses.fake_tensor import is_fake
    if is_fake(t):
        return torch.zeros([int(s) for s in t.shape], dtype=t.dtype)
    return t.detach()


def dynamo_backend(budget=None, **options: Any) -> Callable:
    """A ``torch.compile`` backend that runs each captured graph as chunkc-generated code.

    ``budget``: bytes, or a fraction of the unchunked estimated peak (None: no
    chunking, the generated program only).  ``options`` go to ``chunkc.autochunk``,
    except ``stats`` (a :class:`DynamoStats` to fill).
    """
    stats: DynamoStats | None = options.pop("stats", None)

    def backend(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]):
        import chunkc
        from .torch_backend import compile_torch

        layout, tensors, dynamic = _layout(gm, example_inputs)
        wrapper = _TensorsOnly(gm, layout)
        args = tuple(_concrete(t) for t in tensors)
        has_dynamic = any(dynamic)
        graph = chunkc.from_torch(wrapper, args, dynamic_shapes=tuple(dynamic) if has_dynamic else None)
        plan = None
        if budget is not None:
            sizes = graph.bind_sizes(args)  # reads shapes only
            plan = chunkc.autochunk(graph, budget, sizes=sizes, **options)
        module = compile_torch(graph, plan, grad_mode="no_grad")
        if tensors:
            module.to(tensors[0].device)
        if stats is not None:
            stats.graphs += 1
            stats.plans.append(plan)
            stats.sources.append(module.chunkc_source)
        n_out = len(graph.outputs)
        positions = [i for i, (kind, _, _) in enumerate(layout) if kind == "tensor"]

        def run(*call_args):
            result = module(*[call_args[i] for i in positions])
            return (result,) if n_out == 1 else tuple(result)

        run.chunkc_module = module
        return run

    return backend


__all__ = ["dynamo_backend", "DynamoStats"]
