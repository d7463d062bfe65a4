"""For error messages: where an FX node came from (its :class:`~chunkc.ir.source.SourceInfo`;
the frame chosen as the model's code is explained in :mod:`frontends.provenance`), and what a
torch.export failure asks the user to change (a dim bound, a KV cache)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterable

import torch.fx as fx

from chunkc.ir.source import SourceInfo

from ..provenance import composite_modules, module_stack, parse_stack_trace, source_info


def _class_name(cls) -> str:
    if isinstance(cls, str):
        return cls
    return f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', getattr(cls, '__name__', str(cls)))}"


def _stack(node: fx.Node) -> list[tuple[str, str]]:
    entries = (node.meta.get("nn_module_stack") or {}).values()
    return module_stack((str(path), _class_name(cls)) for path, cls in entries)


def composite_paths(nodes: Iterable[fx.Node]) -> set[str]:
    """The module paths of an exported graph that contain submodules (see frontends.provenance)."""
    return composite_modules(path for n in nodes for path, _ in _stack(n))


def node_source(node: fx.Node, composite: set[str]) -> SourceInfo:
    """The module and the model's source line behind one FX node."""
    return source_info(_stack(node), parse_stack_trace(node.meta.get("stack_trace")), composite)


def source_line(source: SourceInfo) -> str:
    """``modeling.py:123: y = torch.special.bessel_j0(x)`` (the code when the file is readable)."""
    if not source.file:
        return "<no source line recorded>"
    code = source.code()
    return f"{source.file}:{source.line}" + (f": {code}" if code else "")


def op_name(target) -> str:
    """``aten.cosh.default`` for an OpOverload; the qualified name of anything else."""
    import torch
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name.replace('::', '.')}.{target._overloadname}"
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)


def aten_target(target) -> str:
    """The ``aten::name.overload`` text the opaque op stores as its target."""
    import torch
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name}.{target._overloadname}"
    return op_name(target)


# -- torch.export failures that need a change to the call ----------------------------------------

# torch's constraint errors end with "Suggested fixes:" and one "NAME = EXPR" line per dim.
_SUGGESTIONS = re.compile(r"Suggested fixes:\n((?:[ \t]+\S+ = .+\n?)+)")
_SUGGESTION = re.compile(r"^\s+(\S+) = (.+?)\s*$", re.M)
_DIM_CALL = re.compile(r"^Dim\('([^']+)'((?:, (?:min|max)=-?\d+)*)\)$")
_DIM_BOUND = re.compile(r"(min|max)=(-?\d+)")
_CACHE_TYPES = re.compile(r"\b(\w*Cache)\b")
# config fields that hold a size limit (a coincidence with another field is not reported)
_LIMIT_FIELD = re.compile(r"position|max|len|ctx|seq")


@dataclass(frozen=True)
class DimFix:
    """One of torch.export's suggested fixes: ``name = expr``."""

    name: str
    expr: str
    bounds: dict[str, int]  # {"min": 5, "max": 512} when expr is Dim(name, min=..., max=...)

    @property
    def pinned(self) -> int | None:
        """The constant the model's code fixes the dim to (``L = 8``), else None."""
        return int(self.expr) if re.fullmatch(r"-?\d+", self.expr) else None


def suggested_dim_fixes(message: str) -> list[DimFix]:
    """The ``Suggested fixes`` torch.export gives for violated dynamic-shape constraints."""
    block = _SUGGESTIONS.search(message)
    if not block:
        return []
    fixes = []
    for name, expr in _SUGGESTION.findall(block.group(1)):
        call = _DIM_CALL.match(expr)
        bounds = {k: int(v) for k, v in _DIM_BOUND.findall(call.group(2))} if call else {}
        fixes.append(DimFix(name, expr, bounds))
    return fixes


def config_fields_equal_to(module: Any, value: int) -> list[str]:
    """``BertModel.config.max_position_embeddings`` for every integer field of a Hugging Face
    config (on ``module`` or a submodule) that names a limit (positions, max, length) and
    equals ``value``: where a size limit comes from."""
    found: list[str] = []
    modules = module.modules() if hasattr(module, "modules") else [module]
    seen: set[int] = set()
    for sub in modules:
        config = getattr(sub, "config", None)
        if config is None or id(config) in seen or not hasattr(config, "to_dict"):
            continue
        seen.add(id(config))
        for key, v in sorted(config.to_dict().items()):
            if isinstance(v, int) and not isinstance(v, bool) and v == value and _LIMIT_FIELD.search(key):
                found.append(f"{type(sub).__name__}.config.{key}")
    return found


def _describe_fix(fix: DimFix, module: Any) -> tuple[str, str]:
    """(what the model requires, what to change) for one suggested fix."""
    if fix.pinned is not None:
        return (f"{fix.name} must equal {fix.pinned}: the model's code fixes it to that size",
                f"make that dimension static (drop {fix.name}'s Dim from dynamic_shapes), or change the code "
                f"that ties it to {fix.pinned}")
    if fix.bounds:
        limits = " and ".join(f"{fix.name} {'>=' if k == 'min' else '<='} {v}" for k, v in sorted(fix.bounds.items()))
        sources = config_fields_equal_to(module, fix.bounds["max"]) if "max" in fix.bounds else []
        where = f" ({', '.join(sources)} = {fix.bounds['max']})" if sources else ""
        larger = f"; for longer inputs build the model with a larger {sources[0].split('.config.')[1]}" if sources else ""
        return (f"the model's code only works for {limits}{where}",
                f"declare the bound in dynamic_shapes: {fix.name} = {fix.expr}{larger}")
    return (f"{fix.name} must always equal {fix.expr}",
            f"use one Dim for both (or a derived dim): {fix.name} = {fix.expr}")


def export_failure_summary(message: str, module: Any, name: str) -> str | None:
    """A short message with the fix, for the torch.export failures whose fix is known
    (dims the model bounds, pins or ties; a KV cache in the outputs), else None."""
    head = f"chunkc.from_torch could not export {name}"
    fixes = suggested_dim_fixes(message)
    if fixes:
        described = [_describe_fix(f, module) for f in fixes]
        lines = [f"{head}: the dynamic shapes promise sizes the model's code does not accept."]
        lines += [f"  - {need}" for need, _ in described]
        lines.append("What to change:")
        lines += [f"  - {fix}" for _, fix in described]
        return "\n".join(lines)
    cache = _CACHE_TYPES.search(message) if "in output" in message or "past_key_values" in message else None
    if cache:
        return (f"{head}: its forward returns a KV cache ({cache.group(1)}), which torch.export cannot output.\n"
                "What to change: pass use_cache=False (kwargs={'use_cache': False}, with 'use_cache': None in "
                "dynamic_shapes), or set config.use_cache = False before exporting.")
    return None
