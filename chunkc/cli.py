"""The ``chunkc`` command line.

    chunkc opt model.cir -p 'autochunk{budget=0.2}' --sizes L=2048   # like mlir-opt
    chunkc compile model.onnx --budget 30% --backend torch --sizes seq=4096 -o model_chunked.py
    chunkc dot model.cir --budget 30% --sizes L=2048 --depth 2 -o graph.svg   # one box per module
    chunkc diff model.cir -p 'dce,autochunk{budget=0.2}' --sizes L=2048       # IR before/after each pass
    chunkc diff before.cir after.cir                                          # two files side by side
    chunkc passes                                                    # list the passes
    chunkc backends                                                  # list the backends

Models are read by suffix: ``.cir`` (chunkc text IR, weights beside it in
``.cir.npz`` when present) or ``.onnx``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ChunkcError, ParseError
from .passes.budget_text import parse_budget


def _sizes(items: list[str] | None) -> dict[str, int]:
    """``--sizes L=2048,B=2`` (repeatable) -> {"L": 2048, "B": 2}; each value a positive integer."""
    out = {}
    for item in items or []:
        for part in filter(None, (p.strip() for p in item.split(","))):
            if "=" not in part:
                raise ChunkcError(f"--sizes takes NAME=VALUE pairs such as L=2048, got {part!r}")
            name, value = (t.strip() for t in part.split("=", 1))
            if not name.isidentifier():
                raise ChunkcError(f"--sizes {part}: {name!r} is not a size name (an identifier such as L)")
            try:
                number = int(value)
            except ValueError:
                raise ChunkcError(f"--sizes {name}={value}: a size must be a positive integer") from None
            if number < 1:
                raise ChunkcError(f"--sizes {name}={value}: a size must be a positive integer (at least 1)")
            out[name] = number
    return out


def _check_sizes(graph, sizes: dict[str, int], needed: bool) -> dict[str, int]:
    """Sizes the graph has, all of them when ``needed`` (planning or estimating)."""
    own = sorted(graph.symbols())
    listed = ", ".join(own) if own else "none (all its sizes are static)"
    unknown = sorted(set(sizes) - set(own))
    if unknown:
        raise ChunkcError(f"--sizes: graph {graph.name} has no size named {', '.join(unknown)}; its sizes: {listed}")
    missing = [name for name in own if name not in sizes]
    if needed and missing:
        example = ",".join(f"{name}=2048" for name in missing)
        raise ChunkcError(f"--sizes: give a value for {', '.join(missing)} (e.g. --sizes {example}); "
                          f"graph {graph.name}'s sizes: {listed}")
    return sizes


def _budget(text: str):
    """``--budget``: 30%, 0.3, 64MiB, 1.5GB (see chunkc.passes.budget_text)."""
    return parse_budget(text)


def _depth(text: str) -> int:
    try:
        depth = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of levels") from None
    if depth < 0:
        raise argparse.ArgumentTypeError(f"{text} levels: give 0 or more")
    return depth


def load_model(path: str, needs_weights: bool = False):
    """A ``.onnx`` model or chunkc text IR (with its weights from the ``.npz`` beside it; without
    them, a shape-only graph, which is enough for every command but ``compile``)."""
    p = Path(path)
    if not p.exists():
        raise ChunkcError(f"{path}: no such file")
    if p.is_dir():
        raise ChunkcError(f"{path}: a folder; give a model file (.onnx or .cir)")
    if p.suffix == ".onnx":
        from . import from_onnx
        return from_onnx(str(p))
    from .ir.parser import parse_graph
    from .ir.serialize import load, weights_path
    try:
        if weights_path(p).exists():
            return load(str(p))
        if needs_weights:
            raise ChunkcError(f"{path}: its weights {weights_path(p)} are missing (chunkc opt -o {p.name} writes both)")
        return parse_graph(p.read_text())
    except UnicodeDecodeError:
        raise ChunkcError(f"{path}: not a text file; give chunkc text IR (.cir) or an ONNX model (.onnx)") from None
    except ParseError as exc:
        raise ParseError(f"{path}: {exc}") from None


def _cmd_opt(args) -> int:
    from .ir.printer import print_graph
    from .passes.manager import PassManager
    from .passes.report import plan_report
    pm = PassManager.parse(args.passes, verify_each=not args.no_verify, dump_dir=args.dump_dir)
    graph = load_model(args.model)
    sizes = _check_sizes(graph, _sizes(args.sizes), needed=_pipeline_needs_sizes(pm))
    graph, ctx = pm.run(graph, sizes=sizes)
    notes = ""
    if ctx.plan is not None:
        notes += "\n" + plan_report(ctx.plan)
    if "memory" in ctx.analyses:
        rep = ctx.analyses["memory"]
        notes += f"\n# estimated peak: {rep.peak_bytes} bytes at node {rep.peak_node}\n"
    if args.output and Path(args.output).suffix == ".cir":  # a model the next command reads: weights beside it
        from .ir.serialize import save, weights_path
        save(graph, args.output)
        with open(args.output, "a") as f:
            f.write(notes)
        print(f"wrote {args.output} and {weights_path(args.output)}", file=sys.stderr)
        return 0
    _write(print_graph(graph) + notes, args.output)
    return 0


def _pipeline_needs_sizes(pm) -> bool:
    """Planning and estimating need every symbolic size bound."""
    return any(p.name in ("autochunk", "estimate-memory") for p in pm.passes)


def _cmd_compile(args) -> int:
    from . import autochunk
    from .backends import emit_source, write_program
    from .passes.report import plan_report
    budget = _budget(args.budget) if args.budget is not None else None
    graph = load_model(args.model, needs_weights=True)
    sizes = _check_sizes(graph, _sizes(args.sizes), needed=budget is not None)
    plan = None
    if budget is not None:
        plan = autochunk(graph, budget, sizes=sizes, backend=args.backend)
        print(plan_report(plan), file=sys.stderr)
    if args.output:  # the source and, beside it, its weights
        for path in write_program(graph, plan, args.backend, args.output):
            print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(emit_source(graph, plan=plan, backend=args.backend))
    return 0


def _cmd_dot(args) -> int:
    from . import autochunk
    from .viz.dot import render_dot, to_dot
    budget = _budget(args.budget) if args.budget is not None else None
    graph = load_model(args.model)
    sizes = _check_sizes(graph, _sizes(args.sizes), needed=budget is not None)
    plan = autochunk(graph, budget, sizes=sizes) if budget is not None else None
    source = to_dot(graph, plan=plan, sizes=sizes, depth=args.depth)
    if args.output:
        print(f"wrote {render_dot(source, args.output)}")
    else:
        sys.stdout.write(source)
    return 0


def _cmd_diff(args) -> int:
    """Two models side by side, or the IR before and after each pass of a pipeline."""
    from .viz.diff import diff_html, diff_ir
    context = None if args.context < 0 else args.context
    before = load_model(args.model)
    if args.other is not None:
        if args.passes:
            raise ChunkcError("chunkc diff: give a second model or a pipeline (-p), not both")
        pairs = [(f"{args.model} -> {args.other}", before, load_model(args.other))]
    elif args.passes:
        from .passes.manager import PassManager
        pm = PassManager.parse(args.passes, verify_each=not args.no_verify)
        sizes = _check_sizes(before, _sizes(args.sizes), needed=_pipeline_needs_sizes(pm))
        _, ctx = pm.run(before, sizes=sizes)
        stages = ctx.stages
        pairs = [(f"pass {k} of {len(stages) - 1}: {stages[k].pass_name}", stages[k - 1].graph, stages[k].graph)
                 for k in range(1, len(stages))]
        if args.stage is not None:
            chosen = [p for k, p in enumerate(pairs, 1) if str(k) == args.stage or stages[k].pass_name == args.stage]
            if not chosen:
                names = ", ".join(f"{k} ({s.pass_name})" for k, s in enumerate(stages[1:], 1))
                raise ChunkcError(f"chunkc diff: --pass {args.stage!r} is not a pass of the pipeline; "
                                  f"give its name or number: {names}")
            pairs = chosen[:1]
    else:
        raise ChunkcError("chunkc diff: give a second model to compare with, or a pipeline with -p")
    if args.html:
        pages = [diff_html(b, a, sources=args.sources, title=title) for title, b, a in pairs]
        Path(args.html).write_text("\n".join(pages))
        print(f"wrote {args.html}")
        return 0
    text = "".join(f"== {title}\n" + diff_ir(b, a, context=context, width=args.width, sources=args.sources)
                   for title, b, a in pairs)
    _write(text, args.output)
    return 0


def _cmd_passes(args) -> int:
    import dataclasses
    from .passes.manager import available_passes
    for name, cls in sorted(available_passes().items()):
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}{{{opts}}}  {doc}" if opts else f"{name}  {doc}")
    return 0


def _cmd_backends(args) -> int:
    from .backends import backend_names, get_backend
    for name in backend_names():
        b = get_backend(name)
        opts = ", ".join(b.options) or "no options"
        print(f"{name}  ({opts}) {b.description}")
    return 0


def _write(text: str, path: str | None) -> None:
    if path:
        Path(path).write_text(text)
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> int:
    from .backends import backend_names
    parser = argparse.ArgumentParser(prog="chunkc", description="Automatic chunking for activation memory.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("opt", help="run passes on a model and print the IR and the plan")
    p.add_argument("model")
    p.add_argument("-p", "--passes", default="autochunk", help="pipeline, e.g. 'dce,autochunk{budget=0.2}'")
    p.add_argument("--sizes", action="append", help="symbolic sizes, e.g. L=2048")
    p.add_argument("--dump-dir", help="write the IR after every pass into this folder")
    p.add_argument("--no-verify", action="store_true", help="do not verify after each pass")
    p.add_argument("-o", "--output")
    p.set_defaults(fn=_cmd_opt)

    p = sub.add_parser("compile", help="generate chunked source for a model")
    p.add_argument("model")
    p.add_argument("--budget", help="a percentage (30%%) or fraction (0.3) of the unchunked peak, or bytes "
                                    "with a unit (512MiB, 1.5GB)")
    p.add_argument("--backend", default="torch", choices=backend_names())
    p.add_argument("--sizes", action="append")
    p.add_argument("-o", "--output")
    p.set_defaults(fn=_cmd_compile)

    p = sub.add_parser("dot", help="Graphviz dump of the graph and its chunk regions")
    p.add_argument("model")
    p.add_argument("--budget", help="as for compile: 30%%, 0.3, 512MiB, 1.5GB")
    p.add_argument("--sizes", action="append")
    p.add_argument("--depth", type=_depth, help="one box per module this many levels down (e.g. 2)")
    p.add_argument("-o", "--output", help=".dot, .svg or .png")
    p.set_defaults(fn=_cmd_dot)

    p = sub.add_parser("diff", help="the IR before and after each pass, or two models, side by side")
    p.add_argument("model")
    p.add_argument("other", nargs="?", help="a second model: compare the two")
    p.add_argument("-p", "--passes", help="pipeline: show the IR before and after each of its passes")
    p.add_argument("--pass", dest="stage", help="only this pass of the pipeline (its name or number)")
    p.add_argument("--sizes", action="append")
    p.add_argument("--context", type=int, default=3, help="unchanged lines around each change (-1: all)")
    p.add_argument("--width", type=int, default=160, help="characters per output line")
    p.add_argument("--sources", action="store_true", help="keep the #@ source comments")
    p.add_argument("--no-verify", action="store_true", help="do not verify after each pass")
    p.add_argument("--html", help="write the rows, side by side, to this HTML file")
    p.add_argument("-o", "--output")
    p.set_defaults(fn=_cmd_diff)

    p = sub.add_parser("passes", help="list the available passes and their options")
    p.set_defaults(fn=_cmd_passes)

    p = sub.add_parser("backends", help="list the registered backends and their options")
    p.set_defaults(fn=_cmd_backends)

    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of unexpected errors")
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ChunkcError as exc:
        print(f"chunkc: error: {exc}", file=sys.stderr)
    except OSError as exc:  # a file that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"chunkc: error: {where}{exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("chunkc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is chunkc's fault: one line, the traceback on request
        if args.debug:
            raise
        text = " ".join(str(exc).split()) or "(no message)"
        print(f"chunkc: error: {args.command}: {type(exc).__name__}: {text[:300]} (an unexpected error; "
              "rerun with --debug for the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
