"""The pass manager: run passes by name with options, verify and dump after each.

A pass is a frozen dataclass with a ``name`` and typed options as fields; its
``run(graph, ctx)`` returns the (possibly new) graph.  Analyses and plans go
into the :class:`PassContext`, never into hidden globals.  Pipelines are
written like MLIR's: ``"dce,autochunk{budget=0.2,beam=3},verify"``.

    pm = PassManager.parse("autochunk{budget=0.3}", verify_each=True, dump_dir="stages")
    graph, ctx = pm.run(graph, sizes={"L": 2048})
    ctx.plan, ctx.stages   # the plan, and the IR after every pass with its name
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import ChunkcError
from ..ir.graph import Graph
from ..ir.verifier import verify


@dataclass
class Stage:
    """The IR after one pass, labelled with the pass that made it."""

    pass_name: str
    options: dict[str, Any]
    graph: Graph


@dataclass
class PassContext:
    sizes: dict[str, int] = field(default_factory=dict)
    plan: Any = None  # chunkc.passes.plan.Plan once a planning pass ran
    analyses: dict[str, Any] = field(default_factory=dict)  # e.g. "memory" -> MemoryReport
    stages: list[Stage] = field(default_factory=list)


@dataclass(frozen=True)
class Pass:
    """Base class: subclass as a frozen dataclass, set ``name``, implement ``run``."""

    name: ClassVar[str] = ""

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make a pass available by name in pipelines and the CLI."""
    if not cls.name:
        raise ValueError(f"pass class {cls.__name__} has no name")
    _PASSES[cls.name] = cls
    return cls


def available_passes() -> dict[str, type[Pass]]:
    """Every registered pass by name (importing chunkc.passes registers the built-in ones)."""
    return dict(_PASSES)


_PIPE_ITEM = re.compile(r"\s*([A-Za-z_][\w-]*)\s*(\{([^{}]*)\})?\s*(,|$)")


def parse_pipeline(text: str) -> list[Pass]:
    """``"dce,autochunk{budget=0.2}"`` -> pass instances, options typed by their fields."""
    passes = available_passes()
    out: list[Pass] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _PIPE_ITEM.match(text, pos)
        if not m:
            raise ChunkcError(f"pipeline {text!r}: cannot parse at column {pos + 1}; "
                              "write passes as name or name{key=value,...} separated by commas")
        name, _, body, _ = m.groups()
        if name not in passes:
            raise ChunkcError(f"pipeline: unknown pass {name!r}; available: {', '.join(sorted(passes))}")
        cls = passes[name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for item in filter(None, (s.strip() for s in (body or "").split(","))):
            if "=" not in item:
                raise ChunkcError(f"pass {name}: option {item!r} must be key=value")
            key, value = (s.strip() for s in item.split("=", 1))
            if key not in fields:
                raise ChunkcError(f"pass {name}: unknown option {key!r}; options: {', '.join(fields) or 'none'}")
            kwargs[key] = _parse_option(name, key, value, fields[key].type)
        out.append(cls(**kwargs))
        pos = m.end()
    return out


def _parse_option(pass_name: str, key: str, value: str, typ) -> Any:
    typ = str(typ)
    if "str" in typ:  # the pass reads its own text (a budget: 30%, 64MiB)
        return value
    try:
        if value.endswith("%"):
            return float(value[:-1]) / 100.0
        if "bool" in typ:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if "int" in typ and "float" not in typ:
            return int(value)
        if "float" in typ:
            number = float(value)
            return int(number) if "int" in typ and number.is_integer() and number > 1 else number
        return value
    except ValueError:
        raise ChunkcError(f"pass {pass_name}: option {key}={value!r} is not a valid {typ}") from None


class PassManager:
    def __init__(self, passes: list[Pass], verify_each: bool = True, dump_dir: str | Path | None = None,
                 on_pass: Callable[[Pass, Graph, PassContext], None] | None = None, keep_stages: bool = True):
        self.passes = list(passes)
        self.verify_each = verify_each
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.on_pass = on_pass
        self.keep_stages = keep_stages

    @classmethod
    def parse(cls, pipeline: str, **kwargs) -> "PassManager":
        return cls(parse_pipeline(pipeline), **kwargs)

    def run(self, graph: Graph, sizes: dict[str, int] | None = None, ctx: PassContext | None = None):
        ctx = ctx or PassContext(sizes=dict(sizes or {}))
        ran: list[str] = []
        if self.keep_stages:
            ctx.stages.append(Stage("input", {}, graph))
        for k, p in enumerate(self.passes):
            try:
                graph = p.run(graph, ctx)
                if self.verify_each:
                    verify(graph)
            except ChunkcError as exc:  # name the pass and those that ran before it
                before = f" (after {', '.join(ran)})" if ran else ""
                exc.args = (f"pass {p.name}{before}: {exc.args[0] if exc.args else exc}",) + exc.args[1:]
                raise
            ran.append(p.name)
            if self.keep_stages:
                ctx.stages.append(Stage(p.name, p.options(), graph))
            if self.dump_dir is not None:
                from ..ir.printer import print_graph
                self.dump_dir.mkdir(parents=True, exist_ok=True)
                (self.dump_dir / f"{k + 1:02d}-{p.name}.cir").write_text(print_graph(graph))
            if self.on_pass is not None:
                self.on_pass(p, graph, ctx)
        return graph, ctx
