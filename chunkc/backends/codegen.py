"""The code generator shared by every backend.

It walks the schedule of ``plan.graph`` (or of the graph itself when there is no
plan) and emits one Python statement per node, by asking the backend for the
lowering of the node's op (a rule: a function of the node's :class:`NodeContext`
returning the expression that computes the node).  Around that it handles what
every backend needs:

* size variables bound at entry from input shapes (``L = x.shape[1]``);
* identifiers: sanitized names, prefixed where they could clash (:mod:`.names`);
* ``del`` after each value's last use, so that the live set, and therefore the
  peak, is the one :mod:`chunkc.passes.memory` estimates;
* chunk loops: outputs preallocated in full, the chunk size computed at run
  time, region inputs sliced with basic indexing (views), a shorter last chunk,
  each output slice written into its buffer, loop temporaries deleted.

A backend is a :class:`Dialect`: where its rules come from (the op records), the
names its code reserves, how it spells a dtype and an empty buffer, and the
statements that open a call.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, Mapping

import sympy

from ..errors import ChunkcError, UnsupportedOpError
from ..ir.dims import INNER_START, INNER_STOP, LOOP_START, LOOP_STOP
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.lowering import LoweringFn
from ..ir.registry import OpDef
from ..ir.sizes import Size, format_size, free_symbols
from ..passes.accumulate import merge_lines
from ..passes.loop_buffers import loop_buffer
from ..passes.plan import ChunkedValue, ChunkRegion, Plan
from ..passes.plan_index import PlanIndex, RegionView, check_same_signature
from .bindings import size_bindings
from .guards import InputSpec, Signature, guard_function
from .loop_scope import CHUNK, EXTENT, INNER_NAMES, START, STOP, RegionScope
from .names import Namer, check_identifier
from .region_views import RegionViews
from .pyexpr import SizeRenderer, literal, tuple_literal

# A rule returns the expression computing a node: its value when the node has one
# output, a sequence of its values when it has several (chunkc.ir.lowering).
Rule = LoweringFn

# Loop variables of chunk regions; regions run one after another, so they are reused.
DEVICE = "device"  # where new tensors go: bound at entry by backends that place tensors
# module-level and call-level names of the input checks (chunkc.backends.guards)
GUARD_NAMES = frozenset({"inputs", "check_inputs", "SIGNATURE", "guards", "context",
                         "largest", "iterations"})  # (and the locals of chunk_size_K functions)
LONG_CHUNK_EXPR = 40  # a run-time chunk formula longer than this becomes a named function


class Dialect(abc.ABC):
    """What a backend tells the shared generator."""

    name: str = ""
    reserved: frozenset[str] = frozenset()  # local names its code uses (xp, torch, F, ...)
    reserved_attrs: frozenset[str] = frozenset()  # attribute names of its program object
    missing_lowering: str = ""  # what would give an op a lowering here (for the error)
    array_module: str = "xp"  # the name its code calls add, maximum, ... of (an accumulator's merge)
    merge_helpers: str = "rt"  # the module its code calls merges that are not one function of (accumulate.COMBINERS)
    # A run-time function ``runner(body, extent, chunk)`` that calls a region's one-chunk
    # function ``body(start, stop)`` for every chunk; None: the region is a plain for loop.
    region_runner: str | None = None

    @abc.abstractmethod
    def lowering(self, op: OpDef) -> Rule | None:
        """The rule computing a node of ``op``, or None when this backend cannot run it."""

    @abc.abstractmethod
    def dtype(self, dt: DType) -> str:
        """Source text for a dtype (``torch.float32``, ``xp.float32``)."""

    @abc.abstractmethod
    def empty(self, shape: str, dt: DType) -> str:
        """An uninitialized buffer of ``shape`` (source text of a tuple), in C order (the
        estimator lays a loop's output buffer out so: chunkc.passes.loop_buffers)."""

    def dtype_literal(self, dt: DType) -> str:
        """A dtype given as an attribute value (``cast(x, dtype=f16)``)."""
        return self.dtype(dt)

    def rule_for(self, node: Node) -> Rule | None:
        """The rule that lowers ``node``: by default its op's :meth:`lowering` (a backend may
        route some nodes elsewhere, e.g. by their dtypes)."""
        return self.lowering(node.op)

    def prologue(self, gen: "Generator") -> list[str]:
        """Statements run first in each call (asked for once the body is generated)."""
        return []

    # -- input checks (chunkc.backends.guards) ---------------------------------------
    guard_kind: str = "array"  # what explain() expects of an input: "array" or "torch"
    guard_param: str = "context"  # check_inputs' second parameter: what the program runs on

    def guard_context(self, gen: "Generator") -> str | None:
        """Source of check_inputs' second argument in the call (None: nothing to check against)."""
        return None

    def input_check(self, param: str, dt: DType, context: bool) -> str:
        """A condition that ``param`` is an array of dtype ``dt`` where the program runs
        (``context``: whether ``guard_param`` holds something to check against)."""
        return f"{param}.dtype == {self.dtype(dt)}"

    def take_rows(self, args: str) -> str:
        """A call of the runtime's ``take_rows(x, axis, have, need, size, fill)``
        (chunkc.passes.halo.take_rows) on this backend's arrays."""
        return f"rt.take_rows({args})"


@dataclass
class GeneratedFunction:
    """The body of the generated call, ready for a backend to wrap."""

    graph: Graph
    plan: Plan | None
    params: list[str]  # identifiers of the graph inputs, in order
    body: list[str]  # statements, indented relative to the function body
    constants: list[tuple[str, Value]]  # (attribute name, constant) for each weight the body reads
    helpers: list[str] = field(default_factory=list)  # module-level statements the rules asked for
    signature: Signature | None = None  # the inputs the call accepts
    guard: list[str] = field(default_factory=list)  # module-level check_inputs function (chunkc.backends.guards)
    guard_call: str = ""  # the statement that checks and unpacks ``inputs`` at the top of the call


class NodeContext:
    """What a lowering rule sees of one node: argument expressions, attributes, shapes."""

    def __init__(self, gen: "Generator", node: Node):
        self.gen = gen
        self.node = node
        self._loop_attrs: dict[Node, dict] = {}

    # -- inputs --------------------------------------------------------------------
    @property
    def op(self) -> str:
        return self.node.op.name

    @property
    def args(self) -> list[str]:
        return [self.arg(i) for i in range(len(self.node.inputs))]

    def arg(self, i: int) -> str:
        override = self.gen.arg_exprs.get((self.node, i))  # a halo loop's rows of it (chunkc.backends.halo_loop)
        if override is not None:
            return override
        if self._reads_whole(i):
            return self.gen.whole_expr_of(self.node.inputs[i])
        return self.gen.expr_of(self.node.inputs[i])

    def _reads_whole(self, i: int) -> bool:
        """Input ``i`` is a region input that this loop node reads whole, though others slice it
        (decided by the innermost loop that makes or slices it)."""
        scope, v = self.gen.scope, self.node.inputs[i]
        while scope is not None:
            if v.producer in scope.view.node_set:
                return False
            if v in scope.chunk:
                return not scope.view.reads_slice(self.node, i)
            scope = scope.parent
        return False

    def num_inputs(self) -> int:
        return len(self.node.inputs)

    def in_type(self, i: int):
        return self.node.inputs[i].type

    def out_type(self, i: int = 0):
        return self.node.outputs[i].type

    def scalar(self, i: int) -> str | None:
        """A Python literal for input ``i`` when it is a 0-d float/int/bool weight, else None."""
        v = self.node.inputs[i]
        if not v.is_constant or v.data is None or v.rank != 0 or v.dtype.from_ml_dtypes:
            return None
        item = v.data.item()
        if isinstance(item, (bool, int, float)):
            return self.lit(item)
        return None

    # -- attributes ----------------------------------------------------------------
    @property
    def attrs(self) -> Mapping:
        """The node's attributes; inside a chunk loop, those it runs with there (the chunk's
        shape, a positional op's slice start: see RegionView.loop_attrs)."""
        scope = self.gen.scope
        if scope is None:
            return self.node.attrs
        if self.node not in self._loop_attrs:
            self._loop_attrs[self.node] = scope.view.loop_attrs(self.node)
        return self._loop_attrs[self.node]

    def attr(self, key: str) -> str:
        return self.lit(self.attrs[key])

    def lit(self, value) -> str:
        return literal(value, self.gen.sizes, self.gen.dialect.dtype_literal, f"node {self.node.name} ({self.op})")

    def size(self, s: Size) -> str:
        return self.gen.sizes.render(s)

    def dtype(self, dt: DType) -> str:
        return self.gen.dialect.dtype(dt)

    # -- shapes (the chunk axis of a value in the current region is the chunk's length) ---
    def shape(self, value: Value) -> list[str]:
        return self.gen.shape_exprs(value)

    def out_shape(self, i: int = 0) -> str:
        return tuple_literal(self.shape(self.node.outputs[i])) if self.node.outputs[i].rank else "()"

    def in_shape(self, i: int) -> str:
        v = self.node.inputs[i]
        shape = self.gen.shape_exprs(v, whole=self._reads_whole(i))
        return tuple_literal(shape) if v.rank else "()"

    def chunk_range(self, value: Value) -> tuple[int, str, str] | None:
        """``(axis, start, stop)`` of ``value``'s chunk in the enclosing loop (None when not chunked)."""
        found = self.gen.scope.chunk_of(value) if self.gen.scope is not None else None
        if found is None:
            return None
        scope, c = found
        return (c.axis, *_bounds(c, scope))

    # -- module-level helpers --------------------------------------------------------
    def helper(self, hint: str, rhs: str) -> str:
        """A module-level ``name = rhs`` (deduplicated); returns ``name``."""
        return self.gen.helper(hint, rhs)

    def device(self) -> str:
        """The variable holding the device new tensors go to (bound at entry when used)."""
        self.gen.needs_device = True
        return DEVICE

    def fail(self, message: str) -> ChunkcError:
        return UnsupportedOpError(f"{self.gen.dialect.name} backend, node {self.node.name} ({self.op}): {message}")


class Generator:
    """Emits the body of one call of the graph (see the module docstring)."""

    def __init__(self, graph: Graph, plan: Plan | None, dialect: Dialect):
        self.graph = plan.graph if plan is not None else graph
        self.plan = plan
        self.dialect = dialect
        self.lines: list[str] = []
        self.depth = 0
        self.scope: RegionScope | None = None
        self.helpers: dict[str, str] = {}  # rhs -> name
        self.helper_lines: list[str] = []
        if plan is not None:
            check_same_signature(graph, plan.graph)
        self.index = PlanIndex.build(self.graph, plan)
        self.regions = [view.region for view in self.index.regions]

        self.needs_device = False
        self.namer = Namer(set(dialect.reserved) | {EXTENT, CHUNK, START, STOP, DEVICE} | set(INNER_NAMES) | GUARD_NAMES)
        self.attr_namer = Namer(dialect.reserved_attrs)
        self.symbols = self._name_symbols()
        self.bound_by: dict[Node, list[tuple[str, int, int]]] = {}  # node -> (symbol, output, axis) it binds
        for name, (value, axis) in self.graph.data_dependent_sizes().items():
            self.bound_by.setdefault(value.producer, []).append((name, value.index, axis))
        # inside a loop, attributes may name the chunk's bounds (see RegionView.loop_attrs)
        self.sizes = SizeRenderer({**self.symbols, LOOP_START.name: START, LOOP_STOP.name: STOP,
                                   INNER_START.name: INNER_NAMES[2], INNER_STOP.name: INNER_NAMES[3]})
        self.names: dict[Value, str] = {}  # value -> identifier of its full value
        self.constants: dict[Value, str] = {}  # constant -> attribute name
        self.used_constants: dict[Value, None] = {}
        self.params = [self._name_value(v) for v in self.graph.inputs]
        for c in self.graph.constants:
            self.constants[c] = self.attr_namer.claim(c.name, prefix="w_")
        for n in self.graph.nodes:
            for o in n.outputs:
                self._name_value(o)
        self.inner: dict[Value, str] = {}  # overrides inside a region: slices and output chunks
        self.arg_exprs: dict[tuple[Node, int], str] = {}  # (node, input position) -> expression, in a halo loop
        self.held_rows: dict[Value, str] = {}  # value -> name of its (first, stop) rows, in a halo loop
        self.region_views = RegionViews()  # views emitted in a region's chunk function (set by generate)

    # -- names -----------------------------------------------------------------------
    def _name_symbols(self) -> dict[str, str]:
        names: set[str] = set(self.graph.symbols())
        for r in self.regions:
            for q in (r,) + r.inner:
                names |= free_symbols(q.extent) | free_symbols(q.chunk_size)
        names -= {LOOP_START.name, LOOP_STOP.name}
        for n in self.graph.nodes:
            for key in n.op.size_attrs:
                for s in _flatten(n.attrs.get(key)):
                    if isinstance(s, sympy.Basic):
                        names |= {x.name for x in s.free_symbols}
        return {s: self.namer.claim(s, prefix="size_") for s in sorted(names)}

    def _name_value(self, v: Value) -> str:
        name = self.namer.claim(v.name)
        self.names[v] = name
        return name

    def expr_of(self, v: Value) -> str:
        if v in self.inner:
            return self.inner[v]
        return self.whole_expr_of(v)

    def whole_expr_of(self, v: Value) -> str:
        """The full value (never a loop's slice of it)."""
        if v.is_constant:
            self.used_constants[v] = None
            return f"self.{self.constants[v]}"
        return self.names[v]

    def helper(self, hint: str, rhs: str) -> str:
        if rhs not in self.helpers:
            name = self.namer.claim(hint, prefix="h_")
            self.helpers[rhs] = name
            self.helper_lines.append(f"{name} = {rhs}")
        return self.helpers[rhs]

    # -- shapes ----------------------------------------------------------------------
    def shape_exprs(self, v: Value, whole: bool = False) -> list[str]:
        out = [self.sizes.render(s) for s in v.shape]
        if self.scope is not None and v in self.held_rows and not whole:
            rows = self.held_rows[v]
            out[self.scope.chunk[v].axis] = f"{rows}[1] - {rows}[0]"
        elif self.scope is not None and not whole and (found := self.scope.chunk_of(v)) is not None:
            scope, c = found
            length = f"{scope.stop} - {scope.start}"
            out[c.axis] = length if c.unit == 1 else f"{c.unit} * ({length})"
        return out

    def type_text(self, v: Value) -> str:
        dims = [format_size(s) for s in v.shape]
        found = self.scope.chunk_of(v) if self.scope is not None else None
        if found is not None:
            scope, c = found
            dims[c.axis] = scope.names[1] if c.unit == 1 else f"{c.unit}*{scope.names[1]}"
            if c.halo_lo or c.halo_hi:
                dims[c.axis] += f"+{c.halo_lo + c.halo_hi}"
        elif self.scope is not None and v in self.scope.view.accumulators:
            return f"partial {v.dtype.short}[{', '.join(dims)}]"  # this iteration's, merged below
        elif self.scope is not None and v.producer in self.scope.view.node_set:
            return "unused"  # an output nothing reads (half of a split): no chunk axis, its shape is the op's
        return f"{v.dtype.short}[{', '.join(dims)}]"

    # -- emission --------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def generate(self) -> GeneratedFunction:
        self._bind_sizes()
        steps = self.index.steps
        self.region_views = RegionViews.choose(self.index, self.moves_views_into, self.dialect.name,
                                               keep=self.graph.outputs)
        dying = self.region_views.top_level_deaths(self.index, self.graph.outputs)
        for k, step in enumerate(steps):
            if isinstance(step, RegionView):
                self.emit_region(step)
            elif step not in self.region_views.moved:  # a view emitted in its region's chunk body
                self._emit_node(step)
            dead = [self.names[v] for v in dying[k]]
            if dead:
                self.emit(f"del {', '.join(dead)}")
        outs = [self.expr_of(v) for v in self.graph.outputs]
        if len(outs) == 1:
            self.emit(f"return {outs[0]}")
        else:
            self.emit(f"return {tuple_literal(outs) if outs else '()'}")
        self.lines[:0] = self.dialect.prologue(self)  # after the body: it may depend on what the body used
        constants = [(self.constants[c], c) for c in self.graph.constants if c in self.used_constants]
        signature = Signature(self.graph.name, tuple(InputSpec(p, v.dtype, tuple(v.shape))
                                                     for p, v in zip(self.params, self.graph.inputs)),
                              kind=self.dialect.guard_kind)
        context = self.dialect.guard_context(self)
        param = self.dialect.guard_param
        guard = guard_function(signature, self.params, self.bindings, self.symbols, self.sizes.render,
                               lambda p, dt: self.dialect.input_check(p, dt, context is not None), param)
        targets = ", ".join(self.params) + ("," if len(self.params) == 1 else "")
        call = f"check_inputs(inputs, {context or 'None'})"
        return GeneratedFunction(self.graph, self.plan, self.params, self.lines, constants, self.helper_lines,
                                 signature, guard, f"{targets} = {call}" if self.params else call)

    def _bind_sizes(self) -> None:
        self.bindings = size_bindings(self.graph, self.params, self.symbols)
        for sym_name, text in self.bindings:
            self.emit(f"{self.symbols[sym_name]} = {text}")

    def _node_statement(self, node: Node, targets: list[str]) -> None:
        rule = self.dialect.rule_for(node)
        if rule is None:
            raise UnsupportedOpError(f"{self.dialect.name} backend has no lowering for op {node.op.name} "
                                     f"(node {node.name}); {self.dialect.missing_lowering}")
        expr = rule(NodeContext(self, node))  # one value for one output, else a sequence
        lhs = ", ".join(targets)
        types = ", ".join(self.type_text(o) for o in node.outputs)
        from ..ir.source import comment_text  # the node's module path, sanitized for a comment
        where = comment_text(node)
        self.emit(f"{lhs} = {expr}  # {node.op.name} -> {types}" + (f" in {where}" if where else ""))
        for name, index, axis in self.bound_by.get(node, ()):  # a size known once this node has run
            self.emit(f"{self.symbols[name]} = {targets[index]}.shape[{axis}]")

    def _emit_node(self, node: Node) -> None:
        self._node_statement(node, [self.names[o] for o in node.outputs])

    # -- chunk regions ----------------------------------------------------------------
    def emit_region(self, view: RegionView) -> None:
        """Emit one chunk region as a step of the body (a generator subclass may emit regions
        its own way: the training generator, chunkc.backends.torch_train, makes each one an
        autograd Function)."""
        self._emit_region(view)

    def runs_chunks(self, view: RegionView) -> bool:
        """Whether the region's loop is a chunk function that the dialect's runner calls (see
        :meth:`open_region`), not a plain loop."""
        return bool(self.dialect.region_runner) and not any(self.bound_by.get(n) for n in view.nodes)

    def moves_views_into(self, view: RegionView) -> bool:
        """Whether the views that only this region reads are emitted in its chunk function
        (chunkc.backends.region_views: so that torch.compile sees them in the chunk's graph)."""
        return self.runs_chunks(view) and not view.has_halo and not view.inner

    def emit_loop_header(self, view: RegionView, note: str) -> None:
        """A region's comment line (``note`` last), then its extent and chunk size."""
        region, nodes = view.region, view.nodes
        size = format_size(region.chunk_size)
        size = size if len(size) <= 32 else "a size computed from the input sizes"
        extent, chunk = (EXTENT, CHUNK) if view.parent is None else INNER_NAMES[:2]
        what = f"chunk region {view.index}" if view.parent is None else f"inner loop {view.index} of chunk region {view.parent.index}"
        self.emit(f"# {what}: {len(nodes)} nodes ({nodes[0].name} .. {nodes[-1].name}), "
                  f"{format_size(region.extent)} units in chunks of {size}; {note}")
        full = self.sizes.render(region.extent)
        if region.stop_at is not None:  # the units past it change nothing in this outer chunk
            full = f"min({full}, {self.sizes.render(region.stop_at)})"
        self.emit(f"{extent} = {full}")
        self.emit(f"{chunk} = {self._chunk_size_expr(region, extent)}")

    def _emit_region(self, view: RegionView) -> None:
        if view.has_halo:
            from .halo_loop import emit_halo_region
            return emit_halo_region(self, view)
        region, index, nodes, chunk = view.region, view.index, view.nodes, view.chunk
        outputs, sliced = view.outputs, view.sliced

        axes = ", ".join(f"%{v.name} axis {chunk[v].axis}" for v in sliced) or "no sliced input"
        self.open_region(view, f"sliced: {axes}")
        scope = self.scope
        # an inner loop slices values made before its region (read whole there)
        def base(v: Value) -> str:
            if view.parent is None or view.slices_outer_chunk(v):
                return self.expr_of(v)
            return self.whole_expr_of(v)
        self.bind_loop_values(view, lambda v: _slice(base(v), chunk[v], scope))
        if view.parent is None:
            for node in self.region_views.into.get(index, ()):  # locals of the chunk function
                self._emit_node(node)
        out_set = set(outputs)
        dying = view.inner_deaths()
        skip: set[Node] = set()
        for k, node in enumerate(nodes):
            if node in skip:
                continue
            inner = view.inner_at(node)
            if inner is not None:  # the inner loop, then what dies in this iteration over its span
                self._emit_region(inner)
                skip.update(inner.nodes)
                made = inner.node_set
                span = range(k, k + len(inner.nodes))
                dead = [self.inner.get(v, self.names.get(v)) for j in span for v in dying[j]
                        if v.producer not in made or v in inner.accumulators]
                if dead:
                    self.emit(f"del {', '.join(dead)}")
                continue
            self._node_statement(node, [self.inner.get(o, self.names[o]) for o in node.outputs])
            for o in node.outputs:
                if o in view.accumulators:
                    self.emit_merge(view, o)
                elif o in out_set and o not in view.reuse:
                    self.emit(f"{_slice(self.names[o], chunk[o], scope)} = {self.inner[o]}")
            if k == len(nodes) - 1:  # in place: after every read of this iteration's input rows
                for o in view.reuse:
                    self.emit(f"{_slice(self.names[o], chunk[o], scope)} = {self.inner[o]}")
            dead = [self.inner.get(v, self.names.get(v)) for v in dying[k]]
            if dead:
                self.emit(f"del {', '.join(dead)}")
        self.close_region(view)

    def emit_merge(self, view: RegionView, o: Value) -> None:
        """Merge this iteration's partial of accumulator ``o`` into it (chunkc.passes.accumulate)."""
        extent, _, start, stop = self.scope.names if self.scope is not None else (EXTENT, CHUNK, START, STOP)
        for line in merge_lines(self.dialect.array_module, self.names[o], self.inner[o],
                                view.accumulators[o], f"({stop} - {start}) / {extent}", f"{start} == 0",
                                self.dialect.merge_helpers):
            self.emit(line)

    def bind_loop_values(self, view: RegionView, slice_of: Callable[[Value], str]) -> None:
        """The names inside a region's loop: a view ``slice_of(v)`` of each sliced region input,
        and a chunk (an accumulator's partial) of each output."""
        for v in view.sliced:
            name = self.namer.claim(f"{self.names.get(v) or self.constants[v]}_chunk")
            self.emit(f"{name} = {slice_of(v)}  # view of {self.type_text(v)}")
            self.inner[v] = name
        for v in view.outputs:
            self.inner[v] = self.namer.claim(f"{self.names[v]}_{'part' if v in view.accumulators else 'chunk'}")

    def open_region(self, view: RegionView, header: str) -> None:
        """A region's header, its output buffers (or accumulators, or inputs written in place)
        and the top of its loop, whose scope the rest of the region is emitted in.

        Where the dialect has a ``region_runner``, the loop's body is a nested function of one
        chunk, ``def chunk_region_0(start, stop)``, that the runner calls for each chunk (see
        docs/backends.md, Inductor on a generated module); a region in which a node binds a
        size at run time stays a plain loop, so that the size is visible after it."""
        self.emit_loop_header(view, header)
        runs_chunks = self.runs_chunks(view)
        if view.parent is not None:  # an inner loop runs as its outer one does
            runs_chunks = self.scope.body is not None
        label = f"{view.index}" if view.parent is None else f"{view.parent.index}_{view.index}"
        body = self.namer.claim(f"chunk_region_{label}") if runs_chunks else None
        for v in view.outputs:
            buffer = loop_buffer(view, v)  # the rule the estimator lays the value out by
            if buffer is None:
                how = view.accumulators[v]
                self.emit(f"# {self.names[v]}: accumulator {v.type}, each chunk's partial merged by "
                          f"{how.combine}" + (" (weighted by the chunk's share of the axis)" if how.share else ""))
                if body is not None:  # the chunk function sets it (nonlocal): bound here first
                    self.emit(f"{self.names[v]} = None")
                continue
            if buffer.in_place_of is not None:  # written a chunk at a time over an input that dies with the loop
                self.emit(f"{self.names[v]} = {self.whole_expr_of(buffer.in_place_of)}  # output buffer {v.type}, "
                          f"in place of %{buffer.in_place_of.name}")
                continue
            # a fresh buffer in C order (the dialect's empty), whatever layout v's op would give it
            shape = tuple_literal([self.sizes.render(s) for s in v.shape]) if v.rank else "()"
            self.emit(f"{self.names[v]} = {self.dialect.empty(shape, v.dtype)}  # output buffer {v.type}")
        self.needs_device = True
        scope = RegionScope(view, body, self.scope if view.parent is not None else None, dict(self.inner))
        extent, chunk, start, stop = scope.names
        if body is not None:
            self.emit(f"def {body}({start}, {stop}):  # one chunk; {self.dialect.region_runner} runs the loop")
        else:
            starts = f"range(0, {extent}, {chunk})"
            self.emit(f"for {start} in {f'reversed({starts})' if view.region.last_first else starts}:"
                      + ("  # the last chunk first" if view.region.last_first else ""))
        self.depth += 1
        self.scope = scope
        if body is None:
            self.emit(f"{stop} = min({start} + {chunk}, {extent})")
        elif view.accumulators:  # the chunk function rebinds them
            self.emit(f"nonlocal {', '.join(self.names[v] for v in view.accumulators)}")

    def close_region(self, view: RegionView) -> None:
        """The end of a region opened by :meth:`open_region`: the loop (or the runner's call
        of the chunk function) closes, and the names bound for it are free again."""
        self.depth -= 1
        scope = self.scope
        body = scope.body
        extent, chunk = scope.names[:2]
        if body is not None:
            order = ", True" if view.region.last_first else ""  # the last chunk first
            self.emit(f"{self.dialect.region_runner}({body}, {extent}, {chunk}{order})")
            self.emit(f"del {body}")
            self.namer.release(body)
        for v in view.sliced + view.outputs:  # the loop's own names are free again for the next loop
            self.namer.release(self.inner.pop(v))
        if scope.parent is not None:  # back in the outer iteration: its names as they were
            self.inner = scope.saved
        self.scope = scope.parent

    def _chunk_size_expr(self, region: ChunkRegion, extent_name: str = EXTENT) -> str:
        size, extent = region.chunk_size, region.extent
        if isinstance(size, int) and isinstance(extent, int) and region.stop_at is None:
            return str(max(1, min(size, extent)))
        text = self.sizes.render(size)
        if len(text) <= LONG_CHUNK_EXPR or region not in self.regions:
            return f"max(1, min({text}, {extent_name}))"
        return self._chunk_function(region)

    def _chunk_function(self, region: ChunkRegion) -> str:
        """A run-time chunk formula as a named module-level function of the sizes it reads:
        the loop then says ``chunk = chunk_size_0(L)``."""
        index = self.regions.index(region)
        args = [self.symbols[s] for s in sorted(free_symbols(region.chunk_size) | free_symbols(region.extent))]
        name = self.namer.claim(f"chunk_size_{index}")
        render, extent = self.sizes.render, self.sizes.render(region.extent)
        lines = ["", f"def {name}({', '.join(args)}):",
                 f'    """Units per iteration of chunk region {index} at these sizes (at least 1, at most the extent)."""']
        balanced = _balanced(region.chunk_size)
        if balanced is None:
            lines.append(f"    return max(1, min({render(region.chunk_size)}, {extent}))")
        else:  # ceildiv(n, ceildiv(n, largest)): the largest chunk the budget allows, evened out
            n, largest = balanced
            lines += [f"    largest = {render(largest)}  # the most units whose estimated peak fits the budget",
                      f"    iterations = -(-({render(n)}) // max(1, largest))",
                      f"    return max(1, min(-(-({render(n)}) // iterations), {extent}))  # equal iterations"]
        self.helper_lines += lines + [""]
        return f"{name}({', '.join(args)})"


# ---------------------------------------------------------------------------
# Helpers (pure functions over the IR).


def _flatten(value):
    if isinstance(value, tuple):
        for v in value:
            yield from _flatten(v)
    elif value is not None:
        yield value


def _balanced(size: Size):
    """``(n, largest)`` when ``size`` is ``ceildiv(n, ceildiv(n, largest))``, else None."""
    if not isinstance(size, sympy.ceiling):
        return None
    n, inner = sympy.fraction(size.args[0])
    if isinstance(inner, sympy.ceiling):
        n2, largest = sympy.fraction(inner.args[0])
        if n2 == n:
            return n, largest
    return None


def _bounds(c: ChunkedValue, scope: RegionScope | None = None) -> tuple[str, str]:
    """This iteration's first and one-past-last index along ``c``'s axis (of ``scope``'s loop,
    by default a region's)."""
    start, stop = (scope.start, scope.stop) if scope is not None else (START, STOP)
    return (start, stop) if c.unit == 1 else (f"{c.unit} * {start}", f"{c.unit} * {stop}")


def _slice(base: str, c: ChunkedValue, scope: RegionScope | None = None) -> str:
    lo, hi = _bounds(c, scope)
    return f"{base}[{':, ' * c.axis}{lo}:{hi}]"


def generate(graph: Graph, plan: Plan | None, dialect: Dialect) -> GeneratedFunction:
    """Emit the body of one call of ``graph`` chunked by ``plan``."""
    return Generator(graph, plan, dialect).generate()


__all__ = ["Dialect", "GeneratedFunction", "Generator", "NodeContext", "Rule", "generate", "check_identifier",
           "EXTENT", "CHUNK", "START", "STOP", "DEVICE"]
