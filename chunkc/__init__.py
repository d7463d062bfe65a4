"""chunkc: automatic chunking of activation memory for long-sequence inference.

The public surface (see docs/ and ../shared/DESIGN.md)::

    g = chunkc.from_torch(module, args, kwargs=None, dynamic_shapes=None)
    g = chunkc.from_onnx(model_or_path)
    rep = chunkc.estimate_memory(g, plan=None, sizes=None)
    plan = chunkc.autochunk(g, budget, sizes=None)
    fn = chunkc.compile(g, plan=None, backend="torch")
    dot = chunkc.to_dot(g, plan=None)
    n = chunkc.measure_peak(fn, *args)
    chunkc.save_plan(plan, path); plan = chunkc.load_plan(path)

Each function below forwards to the module that implements it, so that importing
chunkc stays cheap and never imports torch or onnx.
"""

from __future__ import annotations

from . import ops
from .errors import (BudgetExceededError, BudgetWarning, ChunkcError, InfeasibleBudgetError, InputError, IRError,
                     ParseError, UnsupportedOpError)
from .ir import DType, Graph, Node, TensorType, Value, sym
from .ir.dtypes import bfloat16, bool_, float16, float32, float64, int8, int32, int64, uint8
from .ir.interpreter import interpret
from .ir.verifier import verify
from .passes.plan import ChunkedValue, ChunkRegion, Plan
from .version import __version__


def from_torch(module, args, kwargs=None, dynamic_shapes=None, **options) -> Graph:
    """Import a PyTorch module through ``torch.export`` (see frontends/pytorch)."""
    from frontends.pytorch import from_torch as _impl
    return _impl(module, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, **options)


def from_onnx(model_or_path, **options) -> Graph:
    """Import an ONNX model (a ModelProto, bytes or a path; see frontends/onnx)."""
    from frontends.onnx import from_onnx as _impl
    return _impl(model_or_path, **options)


def estimate_memory(graph: Graph, plan: Plan | None = None, sizes=None, **options):
    """Liveness over the schedule: ``.peak_bytes``, ``.peak_node``, ``.timeline``
    (``backend=`` whose kernels' workspace counts; ``device="cuda"`` a GPU's allocator)."""
    from .passes.memory import estimate_memory as _impl
    return _impl(graph, plan=plan, sizes=sizes, **options)


def measure_peak(fn, *args, **kwargs) -> int:
    """Bytes the allocator hands out at the peak of one call of ``fn(*args)``, kernel
    temporaries included, inputs and weights excluded."""
    from .measure import measure_peak as _impl
    return _impl(fn, *args, **kwargs)


def measure_step(module, *args, **kwargs) -> int:
    """Bytes allocated during one training step of ``module`` (forward and backward),
    inputs, weights and gradient buffers excluded."""
    from .measure import measure_step as _impl
    return _impl(module, *args, **kwargs)


def autochunk(graph: Graph, budget, sizes=None, **options) -> Plan:
    """Choose chunk regions so that the estimated peak is at most ``budget``
    (bytes, or a float fraction of the unchunked peak)."""
    from .passes.autochunk import autochunk as _impl
    return _impl(graph, budget, sizes=sizes, **options)


def compile(graph: Graph, plan: Plan | None = None, backend: str = "torch", strict: bool = False, **options):
    """Generate source for ``graph`` (chunked by ``plan``) and return a callable that checks its
    inputs; at sizes where the plan's budget cannot hold it warns, or with ``strict=True``
    raises BudgetExceededError, before allocating (see chunkc.backends.compile)."""
    from .backends import compile as _impl
    return _impl(graph, plan=plan, backend=backend, strict=strict, **options)


def dynamo_backend(budget, **options):
    """A ``torch.compile`` backend: ``torch.compile(m, backend=chunkc.dynamo_backend(budget=0.3))``."""
    from .backends.dynamo import dynamo_backend as _impl
    return _impl(budget, **options)


def to_dot(graph: Graph, plan: Plan | None = None, **options) -> str:
    """Graphviz source: each chunk region a cluster, nodes coloured by memory; ``depth=K``
    draws one box per module K levels down, with index arithmetic folded (see chunkc.viz.dot)."""
    from .viz.dot import to_dot as _impl
    return _impl(graph, plan=plan, **options)


def print_graph(graph: Graph) -> str:
    """The text form of ``graph`` (see docs/ir.md for the grammar)."""
    from .ir.printer import print_graph as _impl
    return _impl(graph)


def parse_graph(text: str, weights=None) -> Graph:
    """Parse the text form back into a Graph."""
    from .ir.parser import parse_graph as _impl
    return _impl(text, weights=weights)


def save(graph: Graph, path) -> None:
    """Write ``path`` (text IR) and, beside it, ``path + '.npz'`` (the weights)."""
    from .ir.serialize import save as _impl
    return _impl(graph, path)


def load(path) -> Graph:
    """Read a graph written by :func:`save`."""
    from .ir.serialize import load as _impl
    return _impl(path)


def save_plan(plan: Plan, path, weights=None) -> list[str]:
    """Write ``plan`` and its graph to ``path`` (JSON) and the weights beside it, or name those
    of ``weights`` (a saved graph or plan); see chunkc.passes.plan_file."""
    from .passes.plan_file import save_plan as _impl
    return _impl(plan, path, weights=weights)


def load_plan(path) -> Plan:
    """Read a plan written by :func:`save_plan`, with its graph."""
    from .passes.plan_file import load_plan as _impl
    return _impl(path)
