"""Run the ONNX backend node test cases through the importer and the reference interpreter.

The cases come from ONNX itself (``onnx.backend.test.case.node.collect_testcases``):
about 1,900 one-op models with inputs and expected outputs, written by the ONNX
project.  A case is *in scope* when every op it uses has a converter and every
tensor it declares has an element type chunkc has; each in-scope case is imported,
interpreted with NumPy and compared with the expected outputs (the case's own
rtol/atol, dtypes and shapes too).

Inputs that chunkc needs at import time (a Reshape's shape, Slice bounds, a
TopK's K...) are graph inputs in many cases; they are bound to the case's data
(``from_onnx(..., constant_inputs=...)``) when the importer asks for them.

    python -m frontends.onnx.conformance                       # print the summary
    python -m frontends.onnx.conformance --write docs/onnx_conformance.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from chunkc.errors import ChunkcError, UnsupportedOpError
from chunkc.ir.interpreter import interpret

from .context import DynamicValueError
from .converters import lookup, supported_op_types
from .importer import from_onnx, prepare
from .types import elem_type_name, is_supported_elem_type

# Cases that are in scope but fail, each with its reason.  Keep this list tiny.
_RANDOM = ("training-mode Dropout with ratio > 0 is random (the expected output comes from NumPy's generator); "
           "chunkc imports inference graphs and refuses it with UnsupportedOpError")
KNOWN_FAILURES: dict[str, str] = {
    "test_training_dropout": _RANDOM,
    "test_training_dropout_mask": _RANDOM,
    "test_training_dropout_default": _RANDOM,
    "test_training_dropout_default_mask": _RANDOM,
}


@dataclass
class CaseResult:
    name: str
    op_types: tuple[str, ...]
    status: str  # "pass" | "fail" | "unsupported_op" | "unsupported_dtype"
    detail: str = ""


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    def by_status(self, status: str) -> list[CaseResult]:
        return [r for r in self.results if r.status == status]

    @property
    def in_scope(self) -> list[CaseResult]:
        return [r for r in self.results if r.status in ("pass", "fail")]

    def unexpected_failures(self) -> list[CaseResult]:
        return [r for r in self.by_status("fail") if r.name not in KNOWN_FAILURES]

    def stale_known_failures(self) -> list[str]:
        passed = {r.name for r in self.by_status("pass")}
        return sorted(n for n in KNOWN_FAILURES if n in passed)


def collect_cases():
    import onnx.backend.test.case.node as node_cases
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return node_cases.collect_testcases(None)


def op_types(model: onnx.ModelProto) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({(n.domain if n.domain != "ai.onnx" else "", n.op_type) for n in model.graph.node}))


def _op_name(key: tuple[str, str]) -> str:
    return f"{key[0]}::{key[1]}" if key[0] else key[1]


def _declared_elem_types(model: onnx.ModelProto) -> set[int]:
    """Element types of the model's tensors: declared values, initializers, Cast targets, constants."""
    g = model.graph
    types = {init.data_type for init in g.initializer}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type"):
            types.add(vi.type.tensor_type.elem_type)
        else:
            types.add(-1)  # sequences, maps, optionals
    for n in g.node:
        for a in n.attribute:
            if a.name == "to" and a.type == onnx.AttributeProto.INT:
                types.add(a.i)
            elif a.type == onnx.AttributeProto.TENSOR:
                types.add(a.t.data_type)
    return types


def _runnable(elem_type: int) -> bool:
    """chunkc has the type and NumPy can hold it (bf16 has no NumPy dtype for the interpreter)."""
    return is_supported_elem_type(elem_type) and elem_type != onnx.TensorProto.BFLOAT16


def scope(case) -> tuple[str, str]:
    """("in", "") or (reason status, detail)."""
    bad = sorted(t for t in _declared_elem_types(case.model) if t != 0 and not _runnable(t))
    try:
        model, _ = prepare(case.model, case.name, check=False, census=False)
    except ChunkcError:
        model = case.model
    missing = [k for k in op_types(model) if lookup(*k) is None]
    if missing:
        return "unsupported_op", ", ".join(_op_name(k) for k in missing)
    bad = sorted(set(bad) | {t for t in _declared_elem_types(model) if t != 0 and not _runnable(t)})
    if bad:
        return "unsupported_dtype", ", ".join("non-tensor" if t < 0 else elem_type_name(t) for t in bad)
    return "in", ""


def run_case(case) -> CaseResult:
    ops = tuple(_op_name(k) for k in op_types(case.model))
    status, detail = scope(case)
    if status != "in":
        return CaseResult(case.name, ops, status, detail)
    try:
        with np.errstate(all="ignore"):
            for inputs, expected in case.data_sets:
                _check_data_set(case, [_array(a) for a in inputs], [_array(a) for a in expected])
    except AssertionError as exc:
        return CaseResult(case.name, ops, "fail", "wrong result: " + " ".join(str(exc).split())[:300])
    except UnsupportedOpError as exc:
        return CaseResult(case.name, ops, "fail", f"refused: {exc}"[:400])
    except ChunkcError as exc:
        return CaseResult(case.name, ops, "fail", f"error: {exc}"[:400])
    except Exception as exc:  # a crash is a failure too; report it, never hide it
        return CaseResult(case.name, ops, "fail", f"crash: {type(exc).__name__}: {exc}"[:400])
    return CaseResult(case.name, ops, "pass")


def _array(a) -> np.ndarray:
    return numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else np.asarray(a)


def _check_data_set(case, inputs: list, expected: list) -> None:
    names = [i.name for i in case.model.graph.input]
    frozen: dict[str, np.ndarray] = {}
    while True:
        try:
            graph = from_onnx(case.model, constant_inputs=frozen)
            break
        except DynamicValueError as exc:  # bind the inputs it needs to the case's data, then retry
            wanted = [n for n in exc.graph_inputs if n not in frozen and n in names]
            if not wanted:
                raise
            for n in wanted:
                frozen[n] = inputs[names.index(n)]
    args = [np.asarray(a) for n, a in zip(names, inputs) if n not in frozen]
    outputs = interpret(graph, *args)
    assert len(outputs) == len(expected), f"{len(outputs)} outputs, expected {len(expected)}"
    for k, (got, want) in enumerate(zip(outputs, expected)):
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype, f"output {k}: dtype {got.dtype}, expected {want.dtype}"
        assert got.shape == want.shape, f"output {k}: shape {got.shape}, expected {want.shape}"
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol, err_msg=f"output {k}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"output {k}")


def run_all(name_filter: str | None = None) -> Report:
    start = time.perf_counter()
    report = Report()
    for case in collect_cases():
        if name_filter and name_filter not in case.name:
            continue
        report.results.append(run_case(case))
    report.seconds = time.perf_counter() - start
    return report


# -- the report in docs/ -----------------------------------------------------------------------------


def primary_ops(results: list[CaseResult]) -> dict[str, tuple[str, ...]]:
    """The op type(s) each case tests: an ``_expanded`` case tests its twin's op; otherwise the
    case's ops other than Constant (the helpers that build inputs)."""
    own = {r.name: tuple(op for op in r.op_types if op != "Constant") or r.op_types for r in results}
    out = {}
    for r in results:
        twin = r.name[: -len("_expanded")] if r.name.endswith("_expanded") else None
        out[r.name] = own[twin] if twin in own else own[r.name]
    return out


def markdown(report: Report) -> str:
    results = report.results
    in_scope = report.in_scope
    passed = report.by_status("pass")
    converters = set(supported_op_types())
    primary = primary_ops(results)
    cases_by_op: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        for op in primary[r.name]:
            cases_by_op[op].append(r)
    all_ops = sorted(cases_by_op)
    via_function = sorted(op for op in all_ops if op not in converters
                          and any(r.status in ("pass", "fail") for r in cases_by_op[op]))
    supported = sorted(converters | set(via_function))
    tested_supported = [op for op in all_ops if op in supported]
    unsupported = [op for op in all_ops if op not in supported]
    tested_in_scope = list({r.name: r for op in tested_supported for r in cases_by_op[op]
                            if r.status in ("pass", "fail")}.values())
    lines = [
        "# ONNX backend node tests: conformance of the ONNX frontend",
        "",
        "Generated by `python -m frontends.onnx.conformance --write docs/onnx_conformance.md`",
        f"(onnx {onnx.__version__}, newest opset {onnx.defs.onnx_opset_version()}); do not edit by hand.",
        "",
        "Each case is a small model written by the ONNX project with inputs and expected outputs",
        "(`onnx.backend.test.case.node.collect_testcases`); `_expanded` cases spell an op through its",
        "ONNX function body. A case is in scope when every op has a converter (or a function body made",
        "of such ops, which the importer expands) and every tensor has an element type that chunkc's",
        "NumPy interpreter runs (bf16 has no NumPy dtype). It passes when the imported graph, run by",
        "chunkc's NumPy reference interpreter, matches every expected output: dtype, shape, and values",
        "within the case's own rtol/atol. Inputs that must be known at import (shapes, axes, pads, K)",
        "are bound to the case's data.",
        "",
        "## Summary",
        "",
        f"- ONNX op types supported: **{len(supported)}** ({len(converters)} with a converter, "
        f"{len(via_function)} more through their ONNX function body: {', '.join(via_function) or 'none'})",
        f"- op types tested by the node test cases: {len(all_ops)}, of which supported: {len(tested_supported)}",
        f"- cases collected: {len(results)}; in scope: **{len(in_scope)}**; passed: **{len(passed)}** "
        f"(**{100.0 * len(passed) / max(len(in_scope), 1):.1f}%**)",
        f"- out of scope because an op has no converter: {len(report.by_status('unsupported_op'))}; "
        f"because of an element type: {len(report.by_status('unsupported_dtype'))}",
        f"- time: {report.seconds:.1f} s",
        "",
    ]
    failing = report.by_status("fail")
    lines += ["## Failing in-scope cases", "",
              "Each is listed, with its reason, in `KNOWN_FAILURES` (frontends/onnx/conformance.py); the test",
              "fails on any other failure, and on a listed case that starts to pass.", ""]
    if not failing:
        lines += ["None.", ""]
    else:
        lines += ["| case | reason |", "|---|---|"]
        for r in failing:
            lines.append(f"| {r.name} | {_cell(KNOWN_FAILURES.get(r.name, r.detail))} |")
        lines.append("")
    lines += ["## Supported op types", "",
              "Cases are counted under the op they test (an `_expanded` case under its twin's op).", "",
              "| op type | cases | in scope | passed | out of scope: element type | out of scope: other op |",
              "|---|---|---|---|---|---|"]
    for op in tested_supported:
        rs = cases_by_op[op]
        count = Counter(r.status for r in rs)
        lines.append(f"| {op}{'' if op in converters else ' (function body)'} | {len(rs)} | "
                     f"{count['pass'] + count['fail']} | {count['pass']} | {count['unsupported_dtype']} | "
                     f"{count['unsupported_op']} |")
    untested = sorted(set(supported) - set(all_ops))
    if untested:
        lines += ["", f"Supported without node test cases of their own: {', '.join(untested)}."]
    lines += ["", f"Pass rate on the cases of supported op types: {sum(r.status == 'pass' for r in tested_in_scope)} of "
              f"{len(tested_in_scope)} in scope.", ""]
    lines += ["## Op types without support", "", "With their number of cases.", "",
              ", ".join(f"{op} ({len(cases_by_op[op])})" for op in unsupported), ""]
    dtype_reasons = Counter(r.detail for r in report.by_status("unsupported_dtype"))
    lines += ["## Element types out of scope", "", "| element types | cases |", "|---|---|"]
    for reason, n in dtype_reasons.most_common():
        lines.append(f"| {reason} | {n} |")
    lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", metavar="PATH", help="write the markdown report to PATH")
    parser.add_argument("-k", metavar="TEXT", help="only cases whose name contains TEXT")
    parser.add_argument("-v", action="store_true", help="list every failing case")
    args = parser.parse_args(argv)
    report = run_all(args.k)
    in_scope, passed = report.in_scope, report.by_status("pass")
    print(f"{len(report.results)} cases, {len(in_scope)} in scope, {len(passed)} passed, "
          f"{len(report.by_status('fail'))} failed ({report.seconds:.1f} s)")
    if args.v:
        for r in report.by_status("fail"):
            print(f"FAIL {r.name}: {r.detail}")
    if args.write:
        with open(args.write, "w") as f:
            f.write(markdown(report))
        print(f"wrote {args.write}")
    return 0 if not report.unexpected_failures() else 1


if __name__ == "__main__":
    raise SystemExit(main())
