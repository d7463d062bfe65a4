"""Run the ONNX backend node test cases through the importer and the reference interpreter.

The cases come from ONNX itself (``onnx.backend.test.case.node.collect_testcases``):
about 1,900 one-op models with inputs and expected outputs, written by the ONNX
project.  Every case is imported with ``from_onnx`` (ops without a converter
become opaque nodes that onnxruntime runs), interpreted with NumPy and compared
with the expected outputs: dtype, shape, and values within the case's own
rtol/atol (outputs of bf16 and the float8 formats within two units of their
precision at least: ONNX's expected values round after every NumPy operation,
chunkc once per op).

A case ends in one of:

* ``pass``;
* ``refused``: the importer refused it with an :class:`UnsupportedOpError`.  Refusals of
  string tensors, sequences/optionals/maps and training-only behaviour are *permitted*
  (:func:`permitted_refusal` says which, from the case's own declarations); any other
  refusal counts as a failure;
* ``fail``: a wrong result, another error, or a crash.

Inputs that chunkc needs at import time (a Reshape's shape, Slice bounds, a
TopK's K...) are graph inputs in many cases; they are bound to the case's data
(``from_onnx(..., constant_inputs=...)``) when the importer asks for them.

    python -m frontends.onnx.conformance_report                # print the summary
    python -m frontends.onnx.conformance_report --write docs/onnx_conformance.md
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from chunkc.errors import ChunkcError, UnsupportedOpError
from chunkc.ir.dtypes import dtype as chunkc_dtype
from chunkc.ir.interpreter import interpret

from .context import DynamicValueError
from .converters import lookup
from .importer import TRAINING_DOMAINS, from_onnx, prepare

# Cases that fail, each with its reason.  Keep this list tiny.
KNOWN_FAILURES: dict[str, str] = {}

# Ops that draw random numbers: their expected values come from NumPy's generator, so a case checks
# the dtype, the shape and that every value is one the op can draw.
RANDOM_VALUES = {"Bernoulli": (0, 1)}



@dataclass
class CaseResult:
    name: str
    op_types: tuple[str, ...]  # every op type of the case's model
    opaque: tuple[str, ...]  # the op types that import as opaque nodes (after function expansion)
    status: str  # "pass" | "refused" | "fail"
    detail: str = ""
    permitted: str = ""  # for a refusal: why it is permitted ("string", "non-tensor", "training"), or ""


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    def by_status(self, status: str) -> list[CaseResult]:
        return [r for r in self.results if r.status == status]

    def failures(self) -> list[CaseResult]:
        """Wrong results, errors, and refusals that are not permitted."""
        return [r for r in self.results if r.status == "fail" or (r.status == "refused" and not r.permitted)]

    def unexpected_failures(self) -> list[CaseResult]:
        return [r for r in self.failures() if r.name not in KNOWN_FAILURES]

    def stale_known_failures(self) -> list[str]:
        passed = {r.name for r in self.by_status("pass")}
        return sorted(n for n in KNOWN_FAILURES if n in passed)


def collect_cases(name_filter: str | None = None):
    import onnx.backend.test.case.node as node_cases
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases(None)
    return [c for c in cases if not name_filter or name_filter in c.name]


def op_types(model: onnx.ModelProto) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({(n.domain if n.domain != "ai.onnx" else "", n.op_type) for n in model.graph.node}))


def op_name(key: tuple[str, str]) -> str:
    return f"{key[0]}::{key[1]}" if key[0] else key[1]


def _declared(model: onnx.ModelProto) -> tuple[set[int], bool]:
    """Element types the model declares (values, initializers, Cast targets, constants), and whether
    it declares a value that is not a tensor (a sequence, map or optional)."""
    g = model.graph
    types = {init.data_type for init in g.initializer}
    non_tensor = False
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type"):
            types.add(vi.type.tensor_type.elem_type)
        else:
            non_tensor = True
    for n in g.node:
        for a in n.attribute:
            if a.name == "to" and a.type == onnx.AttributeProto.INT:
                types.add(a.i)
            elif a.type == onnx.AttributeProto.TENSOR:
                types.add(a.t.data_type)
    return types, non_tensor


def permitted_refusal(case) -> str:
    """Why a refusal of this case is permitted ("" when it is not): string tensors, values that
    are not tensors, training-only ops or training-mode behaviour."""
    types, non_tensor = _declared(case.model)
    if onnx.TensorProto.STRING in types:
        return "string"
    if non_tensor:
        return "non-tensor"
    for n in case.model.graph.node:
        if n.domain in TRAINING_DOMAINS:
            return "training"
    if case.name.startswith("test_training_"):  # training-mode Dropout: random, and for training only
        return "training"
    return ""


def _opaque_ops(case) -> tuple[str, ...]:
    try:
        model, _ = prepare(case.model, case.name, check=False, census=False)
    except ChunkcError:
        model = case.model
    return tuple(op_name(k) for k in op_types(model) if lookup(*k) is None)


def run_case(case, tested: tuple[str, ...] = ()) -> CaseResult:
    """Run one case; ``tested`` names the op types it tests (an ``_expanded`` case: its twin's)."""
    ops = tuple(op_name(k) for k in op_types(case.model))
    opaque = _opaque_ops(case)
    drawn = next((RANDOM_VALUES[op] for op in tested or ops if op in RANDOM_VALUES), None)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for inputs, expected in case.data_sets:
                _check_data_set(case, [_array(a) for a in inputs], [_array(a) for a in expected], drawn)
    except AssertionError as exc:
        return CaseResult(case.name, ops, opaque, "fail", "wrong result: " + " ".join(str(exc).split())[:300])
    except UnsupportedOpError as exc:
        return CaseResult(case.name, ops, opaque, "refused", " ".join(str(exc).split())[:400],
                          permitted_refusal(case))
    except ChunkcError as exc:
        return CaseResult(case.name, ops, opaque, "fail", f"error: {exc}"[:400])
    except Exception as exc:  # a crash is a failure too; report it, never hide it
        return CaseResult(case.name, ops, opaque, "fail", f"crash: {type(exc).__name__}: {exc}"[:400])
    return CaseResult(case.name, ops, opaque, "pass")


def _array(a):
    if isinstance(a, onnx.TensorProto):
        return numpy_helper.to_array(a)
    return a if a is None or isinstance(a, (list, tuple)) else np.asarray(a)  # sequences, optionals: as they are


def _check_data_set(case, inputs: list, expected: list, drawn: tuple | None) -> None:
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
        if drawn is not None:  # random draws: only which values can come out is known
            assert np.isin(got, drawn).all(), f"output {k}: values outside {drawn}: {got}"
            continue
        _assert_values(case, k, got, want)


def _assert_values(case, k: int, got: np.ndarray, want: np.ndarray) -> None:
    dt = chunkc_dtype(want.dtype)
    rtol = case.rtol
    if dt.from_ml_dtypes:  # bf16, f8, i4...: compared widened (exact), NaN equal to NaN
        got, want = got.astype(dt.wide), want.astype(dt.wide)
        if dt.is_floating:  # within two units of the type's precision at least (see the module docstring)
            import ml_dtypes
            rtol = max(rtol, 2 * float(ml_dtypes.finfo(dt.numpy).eps))
    if dt.is_floating:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=case.atol, err_msg=f"output {k}")
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"output {k}")


def run_all(name_filter: str | None = None, cases=None) -> Report:
    start = time.perf_counter()
    report = Report()
    cases = cases if cases is not None else collect_cases(name_filter)
    own = {c.name: tuple(op_name(k) for k in op_types(c.model)) for c in cases}
    for case in cases:
        twin = case.name.removesuffix("_expanded")
        report.results.append(run_case(case, own.get(twin, own[case.name])))
    report.seconds = time.perf_counter() - start
    return report
