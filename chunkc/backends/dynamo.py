"""A ``torch.compile`` backend: chunking without leaving PyTorch.

    model = torch.compile(model, backend=chunkc.dynamo_backend(budget=0.3))

Dynamo hands the backend an FX ``GraphModule`` whose placeholders are the
model's tensors (inputs, and with inlined nn.Modules its parameters and
buffers) and, once it has seen two sizes, symbolic ints.  The backend wraps the
GraphModule in a module that takes the tensors only (each symbolic int is read
from a tensor's shape).  At the first call it imports that through the PyTorch
frontend (``chunkc.from_torch``, i.e. ``torch.export``), plans the chunks for
the sizes of that call, and from then on runs the generated torch module; with
symbolic sizes the generated code serves every size dynamo sends it.  Parameters and buffers arrive as
graph inputs: they are not activation memory, and they are used whole unless
the plan slices them.

The generated code runs under ``torch.no_grad`` (inference only): its outputs do not
require grad.  With gradients enabled and inputs that require grad, a call runs dynamo's
graph unchanged, so that autograd keeps working.
"""

from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch

from ..errors import ChunkcError
from ..passes.plan import DEFAULT_BACKEND


@dataclass
class DynamoStats:
    """What the backend did, per compiled graph (for tests and reports)."""

    graphs: int = 0
    plans: list = field(default_factory=list)  # the Plan (or None) of each compiled graph
    sources: list = field(default_factory=list)  # the generated source of each


@dataclass(frozen=True)
class ArgSource:
    """Where one placeholder of dynamo's graph gets its value from the tensors alone."""

    kind: Literal["tensor", "size", "int"]
    tensor: int = 0  # index among the tensor placeholders ("tensor", "size")
    axis: int = 0  # the axis whose size it is ("size")
    value: int = 0  # a constant ("int")


class DynamoGraph(torch.nn.Module):
    """Calls ``gm`` with its symbolic-int arguments read from tensor shapes."""

    def __init__(self, gm: torch.fx.GraphModule, layout: Sequence[ArgSource], names: Sequence[str]):
        super().__init__()
        self.gm = gm
        self.layout = list(layout)
        # torch.export names the graph inputs after forward's signature: use the placeholders' names
        call = self.call

        def forward(*tensors):
            return call(*tensors)

        forward.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
        self.forward = forward

    def call(self, *tensors):
        args = []
        for src in self.layout:
            if src.kind == "tensor":
                args.append(tensors[src.tensor])
            elif src.kind == "size":
                args.append(tensors[src.tensor].shape[src.axis])
            else:
                args.append(src.value)
        return self.gm(*args)


MAX_DIM = 1 << 30  # upper bound given to torch.export for a dynamic axis (an unbounded Dim is not needed)


def _layout(gm: torch.fx.GraphModule, example_inputs: Sequence[Any], names: Sequence[str]):
    """Where each placeholder comes from, and torch.export dynamic shapes for the tensors.

    Axes that share one dynamo symbol share one ``Dim``, named after the first tensor axis
    that has it (``x_dim1``): the chunkc graph's size symbol gets that name.
    """
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(example_inputs):
        raise ChunkcError(f"dynamo backend: {len(placeholders)} placeholders but {len(example_inputs)} example inputs")
    tensor_meta = [node.meta.get("example_value") for node, ex in zip(placeholders, example_inputs)
                   if isinstance(ex, torch.Tensor)]
    dims: dict[str, Any] = {}
    dynamic: list[dict[int, Any]] = [dict() for _ in tensor_meta]
    for t, meta in enumerate(tensor_meta):  # every tensor axis whose traced size is symbolic stays dynamic
        if not isinstance(meta, torch.Tensor):
            continue
        for d, s in enumerate(meta.shape):
            if isinstance(s, torch.SymInt):
                expr = _resolved(s)
                if expr.is_Integer:  # dynamo marked it dynamic, but the model fixed it (a weight's size)
                    continue
                key = str(expr)
                if key not in dims:
                    simple = expr.is_Symbol
                    dims[key] = torch.export.Dim(f"{names[t]}_dim{d}", min=2, max=MAX_DIM) if simple \
                        else torch.export.Dim.DYNAMIC
                dynamic[t][d] = dims[key]
    layout: list[ArgSource] = []
    k = 0
    for node, ex in zip(placeholders, example_inputs):
        if isinstance(ex, torch.Tensor):
            layout.append(ArgSource("tensor", tensor=k))
            k += 1
            continue
        if isinstance(ex, torch.SymInt) or isinstance(node.meta.get("example_value"), torch.SymInt):
            found = _find_dim(node.meta.get("example_value", ex), tensor_meta)
            if found is None:
                raise ChunkcError(f"dynamo backend: symbolic size {node.name} is not the size of any tensor "
                                  "axis; compile with dynamic=False")
            layout.append(ArgSource("size", tensor=found[0], axis=found[1]))
            continue
        if isinstance(ex, int) and not isinstance(ex, bool):
            layout.append(ArgSource("int", value=int(ex)))
            continue
        raise ChunkcError(f"dynamo backend: placeholder {node.name} of type {type(ex).__name__} is not supported")
    return layout, dynamic


def _input_names(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> list[str]:
    """Readable, unique names for the tensor placeholders (``L_x_`` -> ``x``)."""
    names: list[str] = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node, ex in zip(placeholders, example_inputs):
        if not isinstance(ex, torch.Tensor):
            continue
        name = re.sub(r"[^A-Za-z0-9_]", "_", node.name)
        name = re.sub(r"^[lL]_", "", name).strip("_") or "arg"
        name = name.replace("self_modules_", "").replace("_parameters_", "_").replace("_buffers_", "_")
        if name[0].isdigit() or name in names:
            name = f"arg{len(names)}_{name}"
        names.append(name)
    return names


def _resolved(s: torch.SymInt):
    """The sympy expression of a SymInt after the shape environment's replacements (``s1 -> 32``)."""
    node = s.node
    env = getattr(node, "shape_env", None)
    return env.replace(node.expr) if env is not None else node.expr


def _find_dim(sym, tensor_meta) -> tuple[int, int] | None:
    for t, meta in enumerate(tensor_meta):
        if not isinstance(meta, torch.Tensor):
            continue
        for d, s in enumerate(meta.shape):
            if isinstance(s, torch.SymInt) and str(_resolved(s)) == str(_resolved(sym)):
                return t, d
    return None


def dynamo_backend(budget=None, **options: Any) -> Callable:
    """A ``torch.compile`` backend that runs each captured graph as chunkc-generated code.

    ``budget``: bytes, or a fraction of the unchunked estimated peak (None: no
    chunking, the generated program only).  ``options`` go to ``chunkc.autochunk``,
    except ``stats`` (a :class:`DynamoStats` to fill) and ``strict`` (see
    ``chunkc.compile``).  The plan is made for the torch backend, the one that runs.

    Inference only: a call with gradients enabled and an input that requires grad runs
    dynamo's graph as it is (said once, with a warning), so autograd still sees it.
    """
    stats: DynamoStats | None = options.pop("stats", None)
    strict: bool = options.pop("strict", False)
    if options.setdefault("backend", DEFAULT_BACKEND) != "torch":
        raise ChunkcError(f"dynamo_backend runs the torch backend; plan for it (backend={options['backend']!r} "
                          "was given)")

    def backend(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]):
        names = _input_names(gm, example_inputs)
        layout, dynamic = _layout(gm, example_inputs, names)
        positions = [i for i, src in enumerate(example_inputs) if isinstance(src, torch.Tensor)]
        state: dict[str, Any] = {}

        def build(args: tuple):
            # Runs at the first call, outside dynamo's tracing: torch.export inside the backend
            # callback would mix its guards into the frame dynamo is compiling.
            from frontends.pytorch import from_torch

            from ..passes.autochunk import autochunk
            from . import compile as compile_program

            wrapper = DynamoGraph(gm, layout, names)
            dyn = tuple(dynamic) if any(dynamic) else None
            graph = from_torch(wrapper, args, dynamic_shapes=dyn)
            plan = None
            if budget is not None:
                plan = autochunk(graph, budget, sizes=graph.bind_sizes(args), **options)
            module = compile_program(graph, plan, backend="torch", strict=strict, grad_mode="no_grad")
            if args:
                module.to(args[0].device)
            if stats is not None:
                stats.graphs += 1
                stats.plans.append(plan)
                stats.sources.append(module.chunkc_source)
            state["module"], state["outputs"] = module, len(graph.outputs)

        def run(*call_args):
            tensors_now = tuple(call_args[i] for i in positions)
            if torch.is_grad_enabled() and any(t.requires_grad for t in tensors_now):
                if not state.get("warned"):
                    state["warned"] = True
                    warnings.warn("chunkc.dynamo_backend is for inference: with gradients enabled and inputs that "
                                  "require grad, the graph runs as dynamo captured it (call the model under "
                                  "torch.no_grad() or torch.inference_mode() to run it chunked)", stacklevel=2)
                return gm(*call_args)
            if "module" not in state:
                build(tensors_now)
            result = state["module"](*tensors_now)
            return (result,) if state["outputs"] == 1 else tuple(result)

        run.chunkc_state = state
        return run

    return backend


__all__ = ["dynamo_backend", "DynamoStats"]
