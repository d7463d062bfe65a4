"""The importer: an exported, decomposed FX graph -> a chunkc Graph.

One walk over the FX nodes in order (their order becomes the schedule):

* placeholders become graph inputs (the user's tensors, in order) or
  constants (parameters, buffers, lifted tensor constants; created on first use);
  with ``train=True`` parameters become graph inputs after the user's, each a
  trainable :class:`~chunkc.ir.graph.Parameter` under its module name;
* nodes whose value is a Python number or a ``SymInt`` (``sym_size``,
  ``operator.mul`` on sizes) become chunkc sizes, read from the export's own
  symbolic value, so ``4*s0`` arrives as ``4*L``;
* every ATen call goes to its converter (looked up by overload packet); its
  results are checked against the shapes and dtypes torch computed;
* every chunkc node built for an FX node gets that node's source (module path,
  class, and the model's file and line; see :mod:`frontends.provenance`);
* a call no converter maps is recorded (op, count, first source line) and built
  as an ``opaque`` barrier so the walk goes on and finds every unmapped op at
  once.  Unless ``opaque_unknown=True`` the import then fails listing them all.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from chunkc.errors import ChunkcError, IRError, UnsupportedOpError
from chunkc.ir.graph import Graph, Value, sanitize_name
from chunkc.ir.sizes import evaluate, free_symbols, sizes_equal
from chunkc.ir.types import TensorType
from chunkc.ir.verifier import verify

from . import converters
from .context import Args, Ctx, NotConvertible, bind_schema
from .diagnostics import aten_target, composite_paths, node_source, op_name, source_line
from .dtypes import to_chunkc
from .export import ExportError, decompose, export_program
from .guards import pinned_dims
from .symbols import SymbolicValueError, SymbolMap

aten = torch.ops.aten

# Ops that only check or constrain at run time; they produce nothing chunkc needs.
_SKIP = frozenset({
    aten._assert_scalar.default, aten._assert_tensor_metadata.default, aten.sym_constrain_range.default,
    aten.sym_constrain_range_for_size.default, aten._assert_async.default, aten._assert_async.msg,
    aten._functional_assert_async.msg, aten._functional_sym_constrain_range.default,
    aten._functional_sym_constrain_range_for_size.default,
})


class _Poisoned:
    """The value of a node that could not be built (its error is already recorded)."""


POISON = _Poisoned()


@dataclass
class _Lazy:
    """A parameter, buffer or tensor constant; becomes a graph constant when first used."""
    name: str
    tensor: torch.Tensor
    value: Value | None = None


@dataclass
class Unmapped:
    op: str
    count: int = 0
    first_source: str = ""
    first_module: str = ""
    reasons: list[str] = field(default_factory=list)
    blocking: bool = False  # could not be kept as an opaque node either (no tensor result, unbacked sizes)

    def describe(self) -> str:
        where = self.first_source + (f" [in {self.first_module}]" if self.first_module else "")
        why = ", ".join(dict.fromkeys(self.reasons))
        return f"  {self.op} x{self.count} (first at {where}): {why}"


def from_torch(module, args=(), kwargs=None, dynamic_shapes=None, *, opaque_unknown: bool = False,
               strict: bool = False, name: str | None = None, canonical: bool = True, train: bool = False) -> Graph:
    """Import ``module`` (or an ``ExportedProgram``) into a chunkc Graph.

    ``args``, ``kwargs`` and ``dynamic_shapes`` go to ``torch.export.export``
    (non-strict unless ``strict=True``).  Dimensions given as
    ``torch.export.Dim("L")`` become the symbolic size ``L``.  With
    ``opaque_unknown=True`` ops chunkc cannot map are kept as ``opaque``
    barriers (the PyTorch backend runs them) instead of failing the import.
    ``canonical`` (default): the graph is canonicalized (chunkc.passes.canonicalize)
    into what eager PyTorch runs — attention takes ``is_causal``/``enable_gqa``
    where the exported masks and repeated heads prove it.
    ``train=True`` imports a training step: every parameter becomes a graph input (after
    the user's inputs) marked trainable (``graph.parameters``), so that
    ``chunkc.compile`` returns an ``nn.Module`` whose parameters keep the module's names
    and train; buffers stay constants.
    """
    if isinstance(module, torch.export.ExportedProgram):
        ep, label = module, name or "exported_program"
        aliases = {}
    else:
        aliases = _parameter_aliases(module) if train else {}
        ep, label = export_program(module, args, kwargs, dynamic_shapes, strict), name or type(module).__name__
    graph = None
    if importable_as_exported(ep):
        # run_decompositions retraces the whole program (as long as the export itself); skip it
        # when every op already has a converter, and decompose only if one of them gives up
        try:
            graph = import_program(ep, name=label, train=train, aliases=aliases)
        except UnsupportedOpError:
            pass
    if graph is None:
        graph = import_program(decompose(ep, label), opaque_unknown=opaque_unknown, name=label, train=train,
                               aliases=aliases)
    if canonical:
        from chunkc.passes.canonicalize import canonicalize
        graph = canonicalize(graph)
    return graph


def importable_as_exported(ep: torch.export.ExportedProgram) -> bool:
    """Whether the importer can read ``ep`` without ``run_decompositions``: every ATen call has
    a converter (or is a run-time check) and mutates nothing (decomposition functionalizes
    in-place ops); other calls are on sizes only, or pick an item of a multi-output op."""
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        target, val = node.target, node.meta.get("val")
        makes_tensors = isinstance(val, (torch.Tensor, list, tuple))
        if isinstance(target, torch._ops.OpOverload):
            if target._schema.is_mutable:
                return False
            if makes_tensors and target not in _SKIP and converters.lookup(target) is None:
                return False
        elif target is not operator.getitem and makes_tensors:
            return False  # a higher-order op or a Python function producing a tensor
    return True


def import_program(ep: torch.export.ExportedProgram, *, opaque_unknown: bool = False, name: str = "main",
                   train: bool = False, aliases: dict[str, tuple[str, ...]] | None = None) -> Graph:
    """Import an already decomposed ExportedProgram (see :func:`from_torch`)."""
    return _Importer(ep, name, opaque_unknown, train, aliases or {}).run()


def _parameter_aliases(module) -> dict[str, tuple[str, ...]]:
    """For each parameter name, the other names of the same tensor in ``module`` (tied weights)."""
    names: dict[int, list[str]] = {}
    for n, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(n)
    return {n: tuple(m for m in group if m != n) for group in names.values() for n in group if len(group) > 1}


class _Importer:
    def __init__(self, ep: torch.export.ExportedProgram, name: str, opaque_unknown: bool, train: bool = False,
                 aliases: dict[str, tuple[str, ...]] | None = None):
        self.ep = ep
        self.train = train
        self.aliases = aliases or {}
        self.graph = Graph(name)
        self.opaque_unknown = opaque_unknown
        self.env: dict[fx.Node, Any] = {}
        self.unmapped: dict[str, Unmapped] = {}
        self.shape_env = _shape_env(ep)
        self.symbols = SymbolMap(self.shape_env)
        self.label = name
        self._materialized: list[_Lazy] = []  # weights made constants during the current conversion
        self.composite = composite_paths(ep.graph.nodes)

    # -- the walk ------------------------------------------------------------------
    def run(self) -> Graph:
        pinned = pinned_dims(self.shape_env, self.symbols)
        if pinned:
            raise ExportError(
                f"chunkc.from_torch({self.label}): torch.export accepted the dynamic dims but the model's "
                "code only works at the example size:\n"
                + "\n".join(f"  - {p.dim} must equal {p.value} (guard {p.guard})" for p in pinned)
                + "\nWhat to change: make that dimension static (drop it from dynamic_shapes), or change the "
                "code that ties it to a fixed size (a position table, a hard-coded shape).")
        specs = {s.arg.name: s for s in self.ep.graph_signature.input_specs if hasattr(s.arg, "name")}
        placeholders = [n for n in self.ep.graph.nodes if n.op == "placeholder"]
        # the user's inputs first: with train=True the parameters are graph inputs too, after them
        for node in sorted(placeholders, key=lambda n: not _is_user_input(specs.get(n.name))):
            self._placeholder(node, specs.get(node.name))
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                continue
            elif node.op == "call_function":
                first_new = len(self.graph.nodes)
                self._call(node)
                if len(self.graph.nodes) > first_new:
                    source = node_source(node, self.composite)
                    for made in self.graph.nodes[first_new:]:
                        made.source = source
            elif node.op == "output":
                self._outputs(node)
            elif node.op == "get_attr":
                self.env[node] = POISON  # submodules of higher-order ops; their users are reported
        if self.unmapped and (not self.opaque_unknown or any(u.blocking for u in self.unmapped.values())):
            raise UnsupportedOpError(self._unmapped_message())
        self.graph.dce()
        verify(self.graph)
        return self.graph

    def _placeholder(self, node: fx.Node, spec) -> None:
        from torch.export.graph_signature import InputKind

        val = node.meta.get("val")
        kind = spec.kind if spec is not None else InputKind.USER_INPUT
        if kind == InputKind.USER_INPUT:
            if isinstance(val, torch.Tensor):
                shape = tuple(self._size(s, f"input {node.name}") for s in val.shape)
                self.env[node] = self.graph.add_input(node.name, to_chunkc(val.dtype, f"input {node.name}"), shape)
            else:
                self.env[node] = self.symbols.scalar(val, f"input {node.name}") if val is not None else None
            return
        if kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            target = spec.target
            tensor = self.ep.state_dict.get(target) if target in self.ep.state_dict else self.ep.constants.get(target)
            if not isinstance(tensor, torch.Tensor):
                raise ChunkcError(f"{self.label}: {kind.name.lower()} {target!r} is not a tensor ({type(tensor).__name__})")
            if self.train and kind == InputKind.PARAMETER:
                self.env[node] = self._parameter(target, tensor)
                return
            self.env[node] = _Lazy(target, tensor)
            return
        self.env[node] = POISON  # tokens, custom objects: their users are reported

    def _call(self, node: fx.Node) -> None:
        target = node.target
        if target in _SKIP:
            return
        if target is operator.getitem:
            self._getitem(node)
            return
        val = node.meta.get("val")
        if any(self.env.get(a) is POISON for a in node.all_input_nodes):
            self.env[node] = POISON  # a consequence of an op already reported
            return
        if not isinstance(val, (torch.Tensor, list, tuple)) and val is not None:
            try:  # a size or a number (sym_size, operator.mul on SymInts, ...)
                self.env[node] = self.symbols.scalar(val, node.name)
            except SymbolicValueError as exc:
                self._record(node, str(exc))
                self.env[node] = POISON
            return
        conv = converters.lookup(target)
        if conv is None:
            self._unmapped(node, "no converter for this op")
            return
        self._materialized = []
        try:
            with self.graph.transaction():  # a converter that gives up leaves the graph as it was
                fx_args = bind_schema(target, node.args, node.kwargs)
                values = {k: self._arg(v) for k, v in fx_args.items()}
                if _contains_poison(values):
                    self.env[node] = POISON
                    return
                used = {u.args[1] for u in node.users if u.target is operator.getitem}
                cx = Ctx(self.graph, node, fx_args, self._out_types(node), used)
                result = self._check(cx, conv(cx, Args(values, op_name(target))))
        except (NotConvertible, SymbolicValueError, IRError, TypeError, ValueError, KeyError, IndexError,
                AttributeError) as exc:
            for lazy in self._materialized:  # their constants were undone with the rest
                lazy.value = None
            if isinstance(exc, (NotConvertible, SymbolicValueError)):
                reason = str(exc)
            elif isinstance(exc, IRError):
                reason = f"chunkc refused the mapping: {exc}"
            else:  # a converter that did not foresee these arguments
                reason = f"the converter failed on these arguments ({type(exc).__name__}: {exc})"
            self._unmapped(node, reason)
            return
        self.env[node] = result

    def _getitem(self, node: fx.Node) -> None:
        src, index = node.args
        value = self.env.get(src)
        if value is POISON:
            self.env[node] = POISON
            return
        item = value[index]
        if item is None:
            raise ChunkcError(f"{self.label}: node {node.name} reads output {index} of {src.name}, "
                              "which its converter does not produce")
        self.env[node] = item

    def _outputs(self, node: fx.Node) -> None:
        from torch.export.graph_signature import OutputKind

        flat = node.args[0]
        flat = flat if isinstance(flat, (list, tuple)) else [flat]
        kinds = [s.kind for s in self.ep.graph_signature.output_specs]
        outs = []
        for i, arg in enumerate(flat):
            if i < len(kinds) and kinds[i] != OutputKind.USER_OUTPUT:
                continue  # buffer mutations and the like are not results of the call
            v = self._arg(arg) if isinstance(arg, fx.Node) else None
            if isinstance(v, Value):
                outs.append(v)
        if not outs and not self.unmapped:
            raise ChunkcError(f"{self.label}: the module returns no tensor")
        self.graph.set_outputs(*outs)

    # -- arguments and results ---------------------------------------------------------
    def _arg(self, a: Any) -> Any:
        if isinstance(a, fx.Node):
            v = self.env.get(a, POISON)
            if isinstance(v, _Lazy):
                if v.value is None:
                    v.value = self._constant(v)
                    self._materialized.append(v)
                return v.value
            return v
        if isinstance(a, (list, tuple)):
            return type(a)(self._arg(x) for x in a)
        if isinstance(a, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            return self.symbols.scalar(a)
        return a

    def _constant(self, lazy: _Lazy) -> Value:
        t = lazy.tensor.detach().cpu()
        if t.dtype == torch.bfloat16:
            raise NotConvertible(f"weight {lazy.name!r} is bfloat16, which NumPy cannot hold; "
                                 "import the float32 model and cast the graph")
        to_chunkc(t.dtype, f"weight {lazy.name}")
        # the module's own storage, read-only (as torch.export's state_dict holds it): a copy of
        # every weight cost more than the rest of the import; the backends copy what they keep
        data = t.contiguous().numpy()
        data.flags.writeable = False
        return self.graph.add_constant(sanitize_name(lazy.name), data)

    def _parameter(self, target: str, tensor: torch.Tensor) -> Value:
        """A trainable parameter: a graph input (train=True)."""
        t = tensor.detach().cpu()
        if not t.is_floating_point() or t.dtype == torch.bfloat16:
            raise ChunkcError(f"{self.label}: parameter {target!r} is {t.dtype}; train=True imports float32, float16 "
                              "or float64 parameters (import the float32 model and cast the graph)")
        return self.graph.add_parameter(sanitize_name(target), t.contiguous().numpy().copy(), target,
                                        self.aliases.get(target, ()))

    def _size(self, s: Any, where: str):
        return self.symbols.size(s, where)

    def _out_types(self, node: fx.Node) -> list[TensorType | None]:
        val = node.meta.get("val")
        vals = list(val) if isinstance(val, (list, tuple)) else [val]
        out = []
        for v in vals:
            if isinstance(v, torch.Tensor):
                shape = tuple(self._size(s, node.name) for s in v.shape)
                out.append(TensorType(to_chunkc(v.dtype, node.name), shape))
            else:
                out.append(None)
        return out

    def _check(self, cx: Ctx, result: Any) -> Any:
        """Cast to torch's dtype where chunkc's promotion differs; refuse a wrong shape."""
        single = not isinstance(result, (tuple, list))
        results = [result] if single else list(result)
        if not single and len(results) != len(cx.out_types):
            raise NotConvertible(f"converter returned {len(results)} outputs, torch has {len(cx.out_types)}")
        fixed = []
        for i, (r, want) in enumerate(zip(results, cx.out_types)):
            if r is None or want is None:
                fixed.append(r)
                continue
            if not isinstance(r, Value):
                raise NotConvertible(f"converter returned {type(r).__name__} for output {i}")
            if not _same_shape(r.shape, want.shape):
                raise NotConvertible(f"chunkc computed {r.type} for output {i}, torch computed {want} "
                                     "(a converter bug: please report it with this message)")
            fixed.append(cx.cast(r, want.dtype))
        return fixed[0] if single else tuple(fixed)

    # -- unmapped ops ------------------------------------------------------------------------
    def _record(self, node: fx.Node, reason: str) -> None:
        key = op_name(node.target)
        entry = self.unmapped.get(key)
        if entry is None:
            source = node_source(node, self.composite)
            entry = self.unmapped[key] = Unmapped(key, 0, source_line(source), source.scope if source.module else "")
        entry.count += 1
        entry.reasons.append(reason)

    def _unmapped(self, node: fx.Node, reason: str) -> None:
        self._record(node, reason)
        self.env[node] = self._opaque(node)
        if self.env[node] is POISON:
            self.unmapped[op_name(node.target)].blocking = True

    def _opaque(self, node: fx.Node) -> Any:
        """An ``opaque`` barrier node the PyTorch backend runs with the original ATen op."""
        try:
            out_types = self._out_types(node)
        except (SymbolicValueError, ChunkcError) as exc:
            self._no_opaque(node, exc)
            return POISON
        if not out_types or any(t is None for t in out_types):
            self._no_opaque(node, ChunkcError("it returns something other than tensors"))
            return POISON
        if _has_non_tensor_arguments(node):
            self._no_opaque(node, ChunkcError(
                "the opaque op records tensor inputs only, and this call also passes non-default "
                "non-tensor arguments the backend would lose"))
            return POISON
        inputs = self._tensor_inputs(node)
        if inputs is POISON:
            return POISON
        attrs = {"target": aten_target(node.target), "result_types": tuple(str(t) for t in out_types)}
        try:
            n = self.graph.add_node("opaque", inputs, attrs, name=node.name)
        except IRError as exc:
            self._no_opaque(node, exc)
            return POISON
        outs = n.outputs
        single = not isinstance(node.meta.get("val"), (list, tuple))
        return outs[0] if single else tuple(outs)

    def _no_opaque(self, node: fx.Node, exc: Exception) -> None:
        entry = self.unmapped[op_name(node.target)]
        entry.reasons.append("nor as an opaque node" if str(exc) in entry.reasons else f"nor as an opaque node: {exc}")

    def _tensor_inputs(self, node: fx.Node) -> Any:
        """The call's tensor arguments in order (positional, then keyword, lists flattened)."""
        inputs: list[Value] = []

        def walk(a) -> bool:
            if isinstance(a, fx.Node):
                v = self._arg(a)
                if v is POISON:
                    return False
                if isinstance(v, Value):
                    inputs.append(v)
            elif isinstance(a, (list, tuple)):
                return all(walk(x) for x in a)
            return True
        if not all(walk(a) for a in list(node.args) + list(node.kwargs.values())):
            return POISON
        return inputs

    def _unmapped_message(self) -> str:
        total = sum(u.count for u in self.unmapped.values())
        lines = [f"chunkc.from_torch({self.label}): {len(self.unmapped)} ATen op(s) have no chunkc mapping "
                 f"({total} call(s)):"]
        lines += [u.describe() for u in sorted(self.unmapped.values(), key=lambda u: -u.count)]
        if any(u.blocking for u in self.unmapped.values()):
            lines.append("Some of them cannot be kept as opaque barriers either (their result sizes depend on "
                         "data, or they return no tensor): rewrite those lines.")
        else:
            lines.append("Pass opaque_unknown=True to keep them as opaque barriers (the PyTorch backend runs "
                         "them; chunking does not cross them), or rewrite those lines with supported ops.")
        return "\n".join(lines)


def _has_non_tensor_arguments(node: fx.Node) -> bool:
    """Whether the call passes a non-tensor argument other than its schema default."""
    target = node.target
    if not isinstance(target, torch._ops.OpOverload):
        return bool(node.kwargs) or any(not isinstance(a, fx.Node) for a in node.args)
    bound = bind_schema(target, node.args, node.kwargs)
    for arg in target._schema.arguments:
        value = bound.get(arg.name)
        if isinstance(value, fx.Node) and isinstance(value.meta.get("val"), torch.Tensor):
            continue
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, fx.Node) for v in value):
            continue
        if value is None or (arg.has_default_value() and value == arg.default_value):
            continue
        if arg.name in ("device", "layout", "pin_memory", "memory_format"):
            continue
        return True
    return False


def _is_user_input(spec) -> bool:
    from torch.export.graph_signature import InputKind
    return spec is None or spec.kind == InputKind.USER_INPUT


def _contains_poison(values: dict) -> bool:
    def bad(v):
        if v is POISON:
            return True
        if isinstance(v, (list, tuple)):
            return any(bad(x) for x in v)
        return False
    return any(bad(v) for v in values.values())


def _same_shape(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if sizes_equal(x, y):
            continue
        # sympy may not prove equal forms equal (floor((L-1)/2)+1 vs ceiling(L/2)): compare values
        names = sorted(free_symbols(x) | free_symbols(y))
        try:
            if not all(evaluate(x, dict.fromkeys(names, n)) == evaluate(y, dict.fromkeys(names, n))
                       for n in (2, 3, 5, 8, 13, 64, 1000)):
                return False
        except (ValueError, KeyError, TypeError):
            return False
    return True


def _shape_env(ep: torch.export.ExportedProgram):
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        mode = getattr(val, "fake_mode", None)
        if mode is not None and mode.shape_env is not None:
            return mode.shape_env
    return None


__all__ = ["from_torch", "import_program", "Unmapped"]
