"""The PyTorch backend: source of an ``nn.Module`` that holds the graph's weights.

The generated class registers each weight the code reads as a buffer and runs
the graph in ``forward(self, *inputs)``; it can be read, saved (source plus
``state_dict``) and loaded back::

    m = chunkc.compile(graph, plan, backend="torch")
    chunkc.backends.save_module(m, "model_chunked.py")   # + model_chunked.pt
    m2 = chunkc.backends.load_module("model_chunked.py")
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import torch

from ..errors import ChunkcError
from ..ir.dtypes import DType
from ..ir.graph import Graph
from ..ir.lowering import OnHost, as_function, torch_dtype
from ..ir.registry import OpDef
from ..passes.plan import Plan
from .codegen import Dialect, GeneratedFunction, Rule, generate
from .host_call import TORCH_NATIVE, reference_rule, runs_on_host, storage_dtype, weight_tensor
from .header import BUDGET_ATTR, call_entry, describe_signature, guard_block, source_header
from .pyexpr import tuple_literal
from .runtime import load_file, load_source

GRAD_MODES = {"inference": "torch.inference_mode()", "no_grad": "torch.no_grad()"}
TRAIN = "train"  # autograd runs through the module: chunkc.backends.torch_train


def resolve_grad_mode(graph: Graph, grad_mode: str | None) -> str:
    """The grad mode asked for; by default "train" for a graph with parameters, else "inference"."""
    if grad_mode is None:
        return TRAIN if graph.parameters else "inference"
    if grad_mode != TRAIN and grad_mode not in GRAD_MODES:
        raise ChunkcError(f"torch backend: grad_mode must be one of {sorted(GRAD_MODES) + [TRAIN]}, got {grad_mode!r}")
    if grad_mode != TRAIN and graph.parameters:
        raise ChunkcError(f"graph {graph.name} has trainable parameters (from_torch(..., train=True)); compile it "
                          f"with grad_mode='train' (the default), or import it without train=True for inference")
    return grad_mode


def _inference_mode(graph: Graph, grad_mode: str | None) -> str:
    mode = resolve_grad_mode(graph, grad_mode)
    if mode == TRAIN:
        raise ChunkcError(f"graph {graph.name}: grad_mode='train' is compiled by chunkc.compile (backend 'torch'), "
                          "which calls chunkc.backends.torch_train")
    return mode


class TorchDialect(Dialect):
    """Each op's code comes from its record's ``torch`` lowering (chunkc.ir.lowering)."""

    name = "torch"
    reserved = frozenset({"torch", "F", "rt", "self", "device", "load"})
    missing_lowering = "give its record a torch lowering (a call template or a function; see docs/ops.md)"
    array_module = "torch"
    # each region's chunk is a nested function run by a loop that torch.compile does not
    # trace: it compiles one chunk instead of unrolling the loop (chunkc.backends.torch_runtime)
    region_runner = "rt.run_chunks"

    def __init__(self):
        # weights become attributes of an nn.Module: never shadow one of its members
        self.reserved_attrs = frozenset(dir(torch.nn.Module)) | {"chunkc_source", BUDGET_ATTR}

    def lowering(self, op: OpDef) -> Rule | None:
        if op.torch is None:
            return None
        if isinstance(op.torch, OnHost):  # no PyTorch kernel: the NumPy reference, on the host
            return reference_rule
        return as_function(op.torch)

    def dtype(self, dt: DType) -> str:
        return torch_dtype(dt)

    def empty(self, shape: str, dt: DType) -> str:
        if dt not in TORCH_NATIVE:  # such values are NumPy arrays (see host_call.py)
            return f"rt.host_empty({shape}, {dt.short!r})"
        return f"torch.empty({shape}, dtype={self.dtype(dt)}, device=device)"

    def rule_for(self, node) -> Rule | None:
        if runs_on_host(node) and node.op.name != "opaque":  # a dtype PyTorch cannot compute in
            return reference_rule
        return super().rule_for(node)

    guard_kind = "torch"
    guard_param = "device"

    def guard_context(self, gen) -> str | None:
        """Inputs must be on the device of the module's weights (when it reads any)."""
        if gen.used_constants:
            return f"{gen.expr_of(next(iter(gen.used_constants)))}.device"
        return None

    def input_check(self, param: str, dt: DType, context: bool) -> str:
        if dt not in TORCH_NATIVE:  # such values are NumPy arrays (see host_call.py)
            return f"rt.is_host_array({param}, {dt.short!r})"
        check = f"isinstance({param}, torch.Tensor) and {param}.dtype == {self.dtype(dt)}"
        return check + (f" and {param}.device == device" if context else "")

    def prologue(self, gen) -> list[str]:
        if not gen.needs_device:
            return []
        if gen.params:
            return [f"device = {gen.params[0]}.device"]
        if gen.used_constants:
            return [f"device = {gen.expr_of(next(iter(gen.used_constants)))}.device"]
        return ["device = torch.device('cpu')"]


def class_name(graph: Graph) -> str:
    return f"Chunked_{graph.name}"


def emit_torch_source(graph: Graph, plan: Plan | None = None, grad_mode: str | None = None) -> str:
    return _wrap(generate(graph, plan, TorchDialect()), _inference_mode(graph, grad_mode))


def _wrap(fn: GeneratedFunction, grad_mode: str) -> str:
    if grad_mode not in GRAD_MODES:
        raise ChunkcError(f"torch backend: grad_mode must be one of {sorted(GRAD_MODES)}, got {grad_mode!r}")
    name = class_name(fn.graph)
    lines = source_header(fn, "torch")
    lines += ["import torch", "import torch.nn.functional as F", "",
              "from chunkc.backends import guards, torch_runtime as rt", ""]
    lines += fn.helpers + ([""] if fn.helpers else [])
    lines += guard_block(fn)
    lines += ["", f"class {name}(torch.nn.Module):", f'    """{describe_signature(fn)}"""', "",
              "    def __init__(self):", "        super().__init__()", f"        self.{BUDGET_ATTR} = None"]
    for attr, value in fn.constants:
        shape = tuple_literal([str(s) for s in value.type.concrete_shape()]) if value.rank else "()"
        lines.append(f"        self.register_buffer({attr!r}, torch.empty({shape}, dtype={storage_dtype(value.dtype)}))")
    lines += ["", f"    @{GRAD_MODES[grad_mode]}", "    def forward(self, *inputs):"]
    lines += ["        " + line for line in call_entry(fn, runner="rt.check_budget") + fn.body]
    lines += ["", "",
              "def load(weights=None, map_location=None):",
              f'    """A {name} with the weights saved beside this file (same name, .pt)."""',
              f"    module = {name}()",
              "    path = weights if weights is not None else __file__.rsplit('.', 1)[0] + '.pt'",
              "    module.load_state_dict(torch.load(path, map_location=map_location, weights_only=True), assign=True)",
              "    return module.eval()"]
    return "\n".join(lines) + "\n"


def _weight(value) -> torch.Tensor:
    if value.data is None:
        raise ChunkcError(f"constant %{value.name} has no data (a shape-only graph); load its weights first")
    arr = np.asarray(value.data)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, copy=True, order="C")
    return weight_tensor(arr, value.dtype)


def compile_torch(graph: Graph, plan: Plan | None = None, grad_mode: str | None = None,
                  device: Any = None) -> torch.nn.Module:
    """Generate the module's source, run it, and load the graph's weights into it
    (``grad_mode="train"`` is chunkc.backends.torch_train's, which ``chunkc.compile`` calls)."""
    grad_mode = _inference_mode(graph, grad_mode)
    fn = generate(graph, plan, TorchDialect())
    source = _wrap(fn, grad_mode)
    module = load_source(source, f"chunkc_torch_{fn.graph.name}")
    model = getattr(module, class_name(fn.graph))()
    state = {attr: _weight(value) for attr, value in fn.constants}
    model.load_state_dict(state, assign=True)
    model.chunkc_source = source
    model.eval()
    if device is not None:
        model.to(device)
    return model


def save_module(module: torch.nn.Module, path) -> list[str]:
    """Write ``module``'s source to ``path`` and its ``state_dict`` beside it (``.pt``)."""
    source = getattr(module, "chunkc_source", None)
    if getattr(module, "_chunkc_layout", None) is not None:
        raise ChunkcError("save_module: a compiled training module keeps its state in its parameters; save "
                          "module.state_dict() and compile the graph again to load it")
    if source is None:
        raise ChunkcError("save_module takes a module made by chunkc.compile(..., backend='torch')")
    path = pathlib.Path(path)
    if path.suffix != ".py":
        raise ChunkcError(f"save_module: {path} should end in .py (the weights go to {path.stem}.pt)")
    path.write_text(source)
    weights = path.with_suffix(".pt")
    torch.save(module.state_dict(), weights)
    return [str(path), str(weights)]


def load_module(path, map_location=None) -> torch.nn.Module:
    """Import a source file written by :func:`save_module` and load its weights."""
    module = load_file(path, "chunkc_loaded").load(map_location=map_location)
    module.chunkc_source = pathlib.Path(path).read_text()
    return module


__all__ = ["TorchDialect", "emit_torch_source", "compile_torch", "save_module", "load_module", "class_name"]
