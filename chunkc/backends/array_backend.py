"""The NumPy/CuPy backend: one generator whose code takes its array module as a parameter.

The generated source defines a class; ``Program(xp, weights)`` keeps the array
module and the weights (moved to ``xp`` once), and calling it runs the graph::

    class Program_mlp:
        def __init__(self, xp, weights):
            self.xp = xp
            self.w1 = xp.asarray(weights['w1'])

        def __call__(self, *inputs):
            with ref.small_ufunc_buffers(self.xp):  # NumPy's ufunc buffers: a few hundred bytes
                x, = check_inputs(inputs)
                xp = self.xp
                L = x.shape[1]
                h = ref.linear(xp, x, self.w1)  # linear -> f32[L, 3072]
                ...
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..errors import ChunkcError
from ..ir.dtypes import DType
from ..ir.graph import Graph
from ..ir.registry import OpDef
from ..passes.plan import Plan
from .array_lowering import reference_call
from .codegen import Dialect, GeneratedFunction, Rule, generate
from .header import BUDGET_ATTR, call_entry, describe_signature, guard_block, source_header
from .runtime import array_module, load_source


class ArrayDialect(Dialect):
    """Every op runs its record's NumPy reference (``ref.softmax(xp, h, axis=-1)``)."""

    name = "numpy/cupy"
    reserved = frozenset({"xp", "ref", "self", "DType", "array_module", "load_weights", "load"})
    merge_helpers = "ref"
    reserved_attrs = frozenset({"xp", "chunkc_source", BUDGET_ATTR})
    guard_param = "xp"
    missing_lowering = "its record has no NumPy reference"

    def lowering(self, op: OpDef) -> Rule | None:
        return None if op.reference is None else reference_call

    def dtype(self, dt: DType) -> str:
        if dt.from_ml_dtypes:  # bf16, f8, i4...: NumPy holds them through ml_dtypes
            return f"DType.{dt.name}.numpy"
        return f"xp.{dt.numpy.name}"

    def dtype_literal(self, dt: DType) -> str:
        return repr(dt.short)  # references accept chunkc's dtype names

    def empty(self, shape: str, dt: DType) -> str:
        return f"xp.empty({shape}, dtype={self.dtype(dt)})"

    def prologue(self, gen) -> list[str]:
        return ["xp = self.xp"]

    def take_rows(self, args: str) -> str:
        return f"ref.take_rows(xp, {args})"

    def guard_context(self, gen) -> str | None:
        return "self.xp"

    def input_check(self, param: str, dt: DType, context: bool) -> str:
        return f"isinstance({param}, xp.ndarray) and {param}.dtype == {self.dtype(dt)}"


def class_name(graph: Graph) -> str:
    return f"Program_{graph.name}"


def emit_array_source(graph: Graph, plan: Plan | None = None) -> str:
    fn = generate(graph, plan, ArrayDialect())
    return _wrap(fn)


def _wrap(fn: GeneratedFunction) -> str:
    lines = source_header(fn, "numpy/cupy")
    lines += ["from chunkc.backends import guards",
              "from chunkc.backends.runtime import array_module, load_weights, references as ref",
              "from chunkc.ir.dtypes import DType", ""]
    lines += fn.helpers + ([""] if fn.helpers else [])
    lines += guard_block(fn)
    lines += ["", f"class {class_name(fn.graph)}:"]
    lines += [f'    """{describe_signature(fn)}"""', ""]
    lines += ["    def __init__(self, xp, weights):", "        self.xp = xp", f"        self.{BUDGET_ATTR} = None"]
    for attr, value in fn.constants:
        lines.append(f"        self.{attr} = xp.asarray(weights[{attr!r}])  # {value.type}")
    lines += ["", "    def __call__(self, *inputs):"]
    lines += ["        with ref.small_ufunc_buffers(self.xp):  # NumPy's ufunc buffers: a few hundred bytes"]
    lines += ["            " + line for line in call_entry(fn) + fn.body]
    lines += ["", "",
              "def load(xp=None, weights=None):",
              f'    """A {class_name(fn.graph)} on xp (NumPy by default) with the weights saved beside this file',
              '    (same name, .npz)."""',
              "    path = weights if weights is not None else __file__.rsplit('.', 1)[0] + '.npz'",
              f"    return {class_name(fn.graph)}(array_module('numpy') if xp is None else xp, load_weights(path))"]
    return "\n".join(lines) + "\n"


def compile_array(graph: Graph, plan: Plan | None = None, backend: str = "numpy"):
    """Generate the program and instantiate it on ``numpy`` or ``cupy``."""
    xp = array_module(backend)
    if backend == "cupy":
        refuse_ml_dtypes(plan.graph if plan is not None else graph)
    fn = generate(graph, plan, ArrayDialect())
    source = _wrap(fn)
    module = load_source(source, f"chunkc_{backend}_{fn.graph.name}")
    weights = {}
    for attr, value in fn.constants:
        if value.data is None:
            raise ChunkcError(f"constant %{value.name} has no data (a shape-only graph); load its weights first")
        weights[attr] = value.data
    program = getattr(module, class_name(fn.graph))(xp, weights)
    program.chunkc_source = source
    return program


def refuse_ml_dtypes(graph: Graph) -> None:
    """CuPy has no bf16, float8, float4 or sub-byte integer arrays: name the first value that has one."""
    for v in graph.values():
        if v.dtype.from_ml_dtypes:
            where = f"node {v.producer.name} ({v.producer.op.name})" if v.producer is not None else f"%{v.name}"
            raise ChunkcError(f"backend 'cupy': {where} has a value of dtype {v.dtype} (%{v.name}: {v.type}), "
                              "which CuPy cannot hold; use backend='numpy' or backend='torch'")


def write_array_program(graph: Graph, plan: Plan | None, path) -> list[str]:
    """Write the source to ``path`` and the weights beside it (``.npz``, keyed by attribute)."""
    path = pathlib.Path(path)
    fn = generate(graph, plan, ArrayDialect())
    path.write_text(_wrap(fn))
    weights_path = path.with_suffix(".npz")
    np.savez(weights_path, **{attr: value.data for attr, value in fn.constants})
    return [str(path), str(weights_path)]


__all__ = ["ArrayDialect", "emit_array_source", "compile_array", "write_array_program"]
