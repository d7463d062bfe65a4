"""A toy backend: the NumPy references, logging every op they run.

docs/tutorial_backend.md walks through this file; tests/test_backend_registry.py
registers it, compiles chunked plans with it and checks them against the
reference interpreter.
"""

from __future__ import annotations

import numpy

from chunkc.backends import Backend
from chunkc.backends.array_backend import ArrayDialect
from chunkc.backends.codegen import GeneratedFunction, generate
from chunkc.backends.registry import reference_workspace
from chunkc.ir.layout import numpy_layout
from chunkc.backends.runtime import load_source


class TraceDialect(ArrayDialect):
    """Each node calls its op's reference inside ``trace(op, value)``, which logs the op."""

    name = "trace"
    reserved = ArrayDialect.reserved | {"trace"}  # local names the generated code uses
    reserved_attrs = ArrayDialect.reserved_attrs | {"log", "trace"}  # weights must not shadow these

    def lowering(self, op):
        reference = super().lowering(op)  # ref.<op>(xp, *args, **attrs), or None
        if reference is None:
            return None
        return lambda ctx: f"trace({ctx.op!r}, {reference(ctx)})"

    def prologue(self, gen):
        return super().prologue(gen) + ["trace = self.trace"]


def program_source(fn: GeneratedFunction) -> str:
    """A module defining ``Program(weights, log)``, whose call runs the generated body."""
    lines = ["from chunkc.backends.runtime import references as ref", ""]
    lines += fn.helpers  # module-level statements the code asked for (run-time chunk-size functions...)
    lines += ["", "class Program:",
             "    def __init__(self, xp, weights, log):",
             "        self.xp, self.log = xp, log"]
    lines += [f"        self.{attr} = weights[{attr!r}]" for attr, _ in fn.constants]
    lines += ["",
              "    def trace(self, op, value):",
              "        self.log.append(op)",
              "        return value",
              "",
              f"    def __call__(self{''.join(', ' + p for p in fn.params)}):"]
    lines += ["        " + line for line in fn.body]
    return "\n".join(lines) + "\n"


def emit_trace_source(graph, plan=None, log=None) -> str:
    return program_source(generate(graph, plan, TraceDialect()))  # the log does not change the source


def compile_trace(graph, plan=None, log=None):
    fn = generate(graph, plan, TraceDialect())
    module = load_source(program_source(fn), f"chunkc_trace_{fn.graph.name}")
    weights = {attr: value.data for attr, value in fn.constants}
    return module.Program(numpy, weights, [] if log is None else log)


TRACE = Backend(
    "trace", emit_trace_source, compile_trace,
    workspace=reference_workspace,  # its kernels are the references: they allocate their declared workspace
    layout=numpy_layout,  # and lay out elementwise results as NumPy does
    options=("log",), description="the NumPy references, logging each op they run")
