"""Running ``torch.export`` and the decompositions, with errors a user can act on.

When the fix is known (a dim the model bounds, pins or ties to another; a KV cache in
the outputs) the message says what the model needs and the fix, once, in a few lines
(diagnostics.export_failure_summary). Otherwise torch's message is kept whole, after the
usual change that makes the export work. torch's traceback is not chained: its full
message stays on ``ExportError.torch_message``.
"""

from __future__ import annotations

from typing import Any

import torch

from chunkc.errors import ChunkcError

from .decompositions import decomposition_table
from .diagnostics import export_failure_summary


class ExportError(ChunkcError):
    """torch.export could not trace the model (the message says what to change)."""

    def __init__(self, message: str, torch_message: str = ""):
        super().__init__(message)
        self.torch_message = torch_message  # torch's own error, type and text, when there is one


# (what the torch message contains, the advice) — checked in order, several may apply
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("DynamicCache", "past_key_values", "Cache", "cache_position"),
     "transformers models with a KV cache: pass use_cache=False (in kwargs or the config) so the "
     "forward returns no cache objects"),
    (("Constraints violated", "specialized", "specialize"),
     "a dynamic dimension was fixed or limited by the model's code: widen or narrow the Dim's min/max "
     "as torch suggests below, express related sizes as derived dims (2*L), or make that dimension static"),
    (("data-dependent", "Could not guard on data-dependent", "GuardOnDataDependentSymNode",
      "Could not extract specialized integer"),
     "the model branches on tensor values (data-dependent control flow, .item(), nonzero or boolean "
     "masking); rewrite it with torch.where/torch.cond or make that value a Python constant"),
    (("mismatch between the structure of `inputs` and `dynamic_shapes`", "dynamic_shapes"),
     "dynamic_shapes must mirror the inputs passed: one entry per positional argument and keyword given "
     "(None for inputs with no dynamic dimension), e.g. {'input_ids': {1: Dim('L')}, 'use_cache': None}"),
    (("Unsupported", "graph break", "torch._dynamo"),
     "the forward uses Python torch.export cannot trace; chunkc exports with strict=False, which "
     "traces most Python, so the unsupported construct is named above"),
)


def hint_for(message: str) -> list[str]:
    return [advice for needles, advice in _HINTS if any(n in message for n in needles)]


def export_program(module: torch.nn.Module, args: tuple, kwargs: dict | None, dynamic_shapes: Any,
                   strict: bool = False) -> torch.export.ExportedProgram:
    """``torch.export.export`` (non-strict), with failures as :class:`ExportError`."""
    if not isinstance(args, tuple):
        args = (args,) if not isinstance(args, list) else tuple(args)
    try:
        return torch.export.export(module, args, kwargs=kwargs or None, dynamic_shapes=dynamic_shapes, strict=strict)
    except Exception as exc:  # torch raises many types; keep its message whole
        raise _export_error("torch.export.export", module, exc) from None


def decompose(ep: torch.export.ExportedProgram, module_name: str) -> torch.export.ExportedProgram:
    """Run chunkc's decomposition table (see decompositions.py)."""
    try:
        return ep.run_decompositions(decomposition_table())
    except Exception as exc:
        raise _export_error("run_decompositions", module_name, exc) from None


def _export_error(stage: str, module: Any, exc: Exception) -> ExportError:
    name = module if isinstance(module, str) else type(module).__name__
    message = f"{type(exc).__name__}: {exc}"
    summary = export_failure_summary(message, module, name)
    if summary:
        return ExportError(summary, message)
    advice = hint_for(message)
    lines = [f"chunkc.from_torch could not export {name}: {stage} failed."]
    if advice:
        lines.append("What to change:")
        lines.extend(f"  - {a}" for a in advice)
    lines.append("torch said:")
    lines.append(message.strip())
    return ExportError("\n".join(lines), message)
