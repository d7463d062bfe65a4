"""What every generated module shares around its call: the module docstring (how to load
and call it, the sizes it accepts, the plan in brief), the input checks
(:mod:`chunkc.backends.guards`) and the first statements of the call."""

from __future__ import annotations

from ..ir.sizes import format_size
from ..version import __version__
from .codegen import GeneratedFunction

# Attribute of a compiled program that chunkc.compile sets to its run-time budget check
# (chunkc.backends.budget); None in a program loaded from a file.
BUDGET_ATTR = "chunkc_budget"

# How each kind of generated module is loaded, for its docstring.
LOAD = {
    "torch": ["module = chunkc.backends.load_module(path)   # the weights from the .pt file beside it",
              "# or, with its folder on sys.path: module = <file name>.load()"],
    "numpy/cupy": ["program = chunkc.backends.load_program(path)   # NumPy; xp=cupy for the GPU; the .npz beside it",
                   "# or, with its folder on sys.path: program = <file name>.load()"],
}


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def describe_signature(fn: GeneratedFunction) -> str:
    ins = ", ".join(f"{p}: {v.type}" for p, v in zip(fn.params, fn.graph.inputs))
    outs = ", ".join(str(v.type) for v in fn.graph.outputs)
    return f"({ins}) -> ({outs})"


def _plan_lines(fn: GeneratedFunction) -> list[str]:
    plan = fn.plan
    if plan is None or not plan.regions:
        return ["No chunk regions: every node runs once, on whole tensors."]
    sizes = ", ".join(f"{k}={v}" for k, v in sorted(plan.sizes.items())) or "static sizes"
    known = [f"{label} {_mib(n)}" for label, n in (("estimated peak", plan.estimated_peak_bytes),
                                                     ("budget", plan.budget_bytes),
                                                     ("unchunked peak", plan.unchunked_peak_bytes)) if n is not None]
    lines = [f"{len(plan.regions)} chunk region(s), planned at {sizes} for the {plan.backend} backend"
             + (f": {', '.join(known)}" if known else "") + "."]
    for i, r in enumerate(plan.regions):
        size = format_size(r.chunk_size)
        size = size if len(size) <= 32 else "computed at run time from the sizes"
        lines.append(f"  region {i}: {len(r.nodes)} nodes {r.nodes[0]} .. {r.nodes[-1]}, "
                     f"{format_size(r.extent)} units, chunk {size}")
    return lines


def source_header(fn: GeneratedFunction, backend: str) -> list[str]:
    """The module docstring."""
    sig = fn.signature
    symbols = sig.symbols() if sig is not None else []
    call = f"outputs = {'module' if backend == 'torch' else 'program'}({', '.join(fn.params)})"
    lines = [f'"""chunkc {__version__}: graph {fn.graph.name} for the {backend} backend.', "",
             "Load and call it:", ""]
    lines += ["    " + line for line in LOAD.get(backend, [])] + [f"    {call}", ""]
    lines.append("It takes, checked at every call (an InputError names the input at fault):")
    lines.append("")
    lines += [f"    {p}: {v.type}" for p, v in zip(fn.params, fn.graph.inputs)] or ["    no inputs"]
    if symbols:
        chunked = fn.plan is not None and fn.plan.regions
        lines.append(f"    for any {', '.join(symbols)} >= 1" + (", chunk sizes computed at run time" if chunked else ""))
    lines.append("")
    lines.append(f"and returns {', '.join(str(v.type) for v in fn.graph.outputs) or 'nothing'}.")
    lines.append("")
    lines += _plan_lines(fn)
    if fn.plan is not None and fn.plan.budget_bytes is not None and symbols:
        lines += ["", "Called through chunkc.compile, the program warns (or with strict=True raises",
                  "BudgetExceededError) before a call at sizes where the budget cannot hold."]
    lines += ["", "Regenerate rather than edit: chunkc.backends.emit_source(graph, plan, backend).", '"""', ""]
    return lines


def guard_block(fn: GeneratedFunction) -> list[str]:
    """Module-level ``SIGNATURE`` and ``check_inputs`` (see chunkc.backends.guards)."""
    if fn.signature is None:
        return []
    return ["", f"SIGNATURE = {fn.signature.literal()}", "", ""] + fn.guard + [""]


def budget_checked(fn: GeneratedFunction) -> bool:
    """Whether the call can outgrow its plan's budget: a budget and sizes that vary."""
    plan = fn.plan
    return (plan is not None and plan.budget_bytes is not None and bool(fn.graph.symbols())
            and not fn.graph.data_dependent_sizes())


def call_entry(fn: GeneratedFunction, runner: str | None = None) -> list[str]:
    """The first statements of a call taking ``*inputs``: check and unpack them; then the
    budget check chunkc.compile installs, before anything is allocated.  ``runner``: a
    runtime function that calls the check for the program (the torch backend's runs it
    outside ``torch.compile``'s graphs); None: the program calls it."""
    lines = [fn.guard_call]
    if budget_checked(fn):
        call = f"{runner}(self.{BUDGET_ATTR}, inputs)" if runner else f"self.{BUDGET_ATTR}(inputs)"
        lines += [f"if self.{BUDGET_ATTR} is not None:  # does the plan's budget hold at these sizes? (chunkc.compile)",
                  f"    {call}"]
    return lines


__all__ = ["BUDGET_ATTR", "budget_checked", "call_entry", "describe_signature", "guard_block", "source_header"]
