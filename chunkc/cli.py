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

from .errors import ChunkcError


def _sizes(items: list[str] | None) -> dict[str, int]:
    out = {}
    for item in items or []:
        for part in item.split(","):
            if "=" not in part:
                raise ChunkcError(f"--sizes takes NAME=VALUE pairs, got {part!r}")
            name, value = part.split("=", 1)
            try:
                out[name.strip()] = int(value)
            except ValueError:
                raise ChunkcError(f"--sizes {name}: {value!r} is not an integer") from None
    return out


def _budget(text: str):
    text = text.strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100.0
    for suffix, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("B", 1)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * scale)
    value = float(text)
    return value if value <= 1.0 else int(value)


def load_model(path: str):
    p = Path(path)
    if not p.exists():
        raise ChunkcError(f"{path}: no such file")
    if p.suffix == ".onnx":
        from . import from_onnx
        return from_onnx(str(p))
    from .ir.serialize import load
    return load(str(p))


def _cmd_opt(args) -> int:
    from .ir.printer import print_graph
    from .passes.manager import PassManager
    from .passes.report import plan_report
    graph = load_model(args.model)
    pm = PassManager.parse(args.passes, verify_each=not args.no_verify, dump_dir=args.dump_dir)
    graph, ctx = pm.run(graph, sizes=_sizes(args.sizes))
    out = print_graph(graph)
    if ctx.plan is not None:
        out += "\n" + plan_report(ctx.plan)
    if "memory" in ctx.analyses:
        rep = ctx.analyses["memory"]
        out += f"\n# estimated peak: {rep.peak_bytes} bytes at node {rep.peak_node}\n"
    _write(out, args.output)
    return 0


def _cmd_compile(args) -> int:
    from . import autochunk
    from .backends import emit_source, write_program
    from .passes.report import plan_report
    graph = load_model(args.model)
    plan = None
    if args.budget is not None:
        plan = autochunk(graph, _budget(args.budget), sizes=_sizes(args.sizes), backend=args.backend)
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
    graph = load_model(args.model)
    sizes = _sizes(args.sizes)
    plan = autochunk(graph, _budget(args.budget), sizes=sizes) if args.budget else None
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
        _, ctx = PassManager.parse(args.passes, verify_each=not args.no_verify).run(before, sizes=_sizes(args.sizes))
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
    p.add_argument("--budget", help="bytes (e.g. 512MiB) or a percentage of the unchunked peak (e.g. 30%%)")
    p.add_argument("--backend", default="torch", choices=backend_names())
    p.add_argument("--sizes", action="append")
    p.add_argument("-o", "--output")
    p.set_defaults(fn=_cmd_compile)

    p = sub.add_parser("dot", help="Graphviz dump of the graph and its chunk regions")
    p.add_argument("model")
    p.add_argument("--budget")
    p.add_argument("--sizes", action="append")
    p.add_argument("--depth", type=int, help="one box per module this many levels down (e.g. 2)")
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

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ChunkcError as exc:
        print(f"chunkc: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
