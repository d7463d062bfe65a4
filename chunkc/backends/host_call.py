"""PyTorch backend: nodes that run on the host through NumPy instead of a PyTorch call.

Two kinds of node take this path:

* an ``opaque`` node with an ONNX definition: onnxruntime runs it
  (chunkc/ir/onnx_node.py), one session per node, built when the
  generated module loads;
* a node with a value whose dtype PyTorch cannot compute in (the float8 and
  float4 formats, the sub-byte integers, uint16/32/64, which PyTorch holds
  with almost no kernels): its NumPy reference runs, widened as everywhere
  (chunkc/ir/reference.py), so the result is the NumPy backend's.

Arguments move to the CPU as NumPy arrays; results go back to the program's
device as tensors when PyTorch has their dtype (bf16 included), and stay NumPy
arrays otherwise: inside a compiled module a value of such a dtype *is* a NumPy
array (chunk buffers too), a weight of such a dtype is a buffer holding its
bits in an integer type of the same width, and such a graph output is returned
as a NumPy array.  Nothing here guesses: every conversion is told the IR dtype.

The generated module calls these through ``torch_runtime`` (``rt.host_reference``,
``rt.onnx_node``, ``rt.run_onnx``, ``rt.host_empty``); the lowering rules are
:func:`reference_rule` and :func:`onnx_rule`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..ir.dtypes import DType, dtype as to_dtype
from ..ir.graph import Node
from .pyexpr import literal, tuple_literal

# dtypes whose tensors PyTorch computes with (its kernels cover them)
TORCH_NATIVE = frozenset({DType.float64, DType.float32, DType.float16, DType.bfloat16, DType.int64, DType.int32,
                          DType.int16, DType.int8, DType.uint8, DType.bool})
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def runs_on_host(node: Node) -> bool:
    """Whether the node reads or writes a value of a dtype PyTorch cannot compute in."""
    return any(v.dtype not in TORCH_NATIVE for v in list(node.inputs) + list(node.outputs))


def storage_dtype(dt: DType) -> torch.dtype:
    """The tensor dtype holding ``dt``'s values in a module (its bits, for a foreign dtype)."""
    return getattr(torch, dt.name) if dt in TORCH_NATIVE else _BITS[dt.itemsize]


def weight_tensor(arr: np.ndarray, dt: DType) -> torch.Tensor:
    """A weight as a tensor (bf16 and foreign dtypes through their bits)."""
    arr = arr if arr.flags.c_contiguous else arr.copy()  # (np.ascontiguousarray makes a 0-d array 1-d)
    if dt in TORCH_NATIVE and not dt.from_ml_dtypes:
        return torch.from_numpy(arr)
    bits = torch.from_numpy(arr.view(np.dtype(f"i{dt.itemsize}") if dt.itemsize > 1 else np.uint8))
    return bits.view(torch.bfloat16) if dt == DType.bfloat16 else bits


# -- the lowering rules ------------------------------------------------------------------------


def _args(ctx) -> str:
    return tuple_literal(ctx.args) if ctx.args else "()"


def _dtypes(values) -> str:
    return tuple_literal([repr(v.dtype.short) for v in values]) if values else "()"


def reference_rule(ctx) -> str:
    """``rt.host_reference('op', (args), (in dtypes), {attrs}, (out dtypes), device)``."""
    node = ctx.node
    where = f"node {node.name} ({node.op.name})"
    attrs = {}
    for key, value in ctx.attrs.items():  # inside a chunk loop, the loop's (chunkc.passes.plan_index.loop_attrs)
        attrs[key] = literal(value, ctx.gen.sizes, lambda dt: repr(dt.short), where)
    text = "{" + ", ".join(f"{k!r}: {v}" for k, v in attrs.items()) + "}"
    call = (f"rt.host_reference({node.op.name!r}, {_args(ctx)}, {_dtypes(node.inputs)}, {text}, "
            f"{_dtypes(node.outputs)}, {ctx.device()})")
    return call + ("[0]" if len(node.outputs) == 1 else "")


def onnx_rule(ctx) -> str:
    """An opaque ONNX node: a module-level ``rt.onnx_node(...)`` (its session) and its call."""
    node = ctx.node
    target = node.attrs["target"]
    op = ctx.helper(f"onnx_{target.split('::')[-1]}", f"rt.onnx_node({node.attrs['definition']!r}, {target!r})")
    call = f"rt.run_onnx({op}, {_args(ctx)}, {_dtypes(node.inputs)}, {_dtypes(node.outputs)}, {ctx.device()})"
    return call + ("[0]" if len(node.outputs) == 1 else "")


# -- run time ------------------------------------------------------------------------------------


def is_host_array(x: Any, short: str) -> bool:
    """Whether ``x`` is a NumPy array of IR dtype ``short`` (an input PyTorch has no dtype for)."""
    return isinstance(x, np.ndarray) and x.dtype == to_dtype(short).numpy


def to_numpy(x: Any, short: str) -> np.ndarray:
    """A value of IR dtype ``short`` as a NumPy array on the host."""
    dt = to_dtype(short)
    if isinstance(x, np.ndarray):
        return x
    if not isinstance(x, torch.Tensor):
        return np.asarray(x, dtype=dt.numpy)
    t = x.detach().cpu()
    if t.dtype == storage_dtype(dt) and not dt.from_ml_dtypes:
        return t.numpy()
    bits = t.view(_BITS[dt.itemsize]) if t.dtype.itemsize == dt.itemsize else t
    return bits.numpy().view(dt.numpy)


def to_value(a: np.ndarray, short: str, device) -> Any:
    """A host result as the program holds it: a tensor on ``device`` when PyTorch has the dtype."""
    dt = to_dtype(short)
    a = np.asarray(a).astype(dt.numpy, copy=False)
    a = a if a.flags.c_contiguous else a.copy()
    if dt not in TORCH_NATIVE:
        return a
    return weight_tensor(a, dt).to(device)


def host_reference(op: str, args: Sequence, in_dtypes: Sequence[str], attrs: dict, out_dtypes: Sequence[str],
                   device) -> tuple:
    """Run op ``op``'s NumPy reference on the host (widened for ml_dtypes values)."""
    from ..ir.reference import call_widened, needs_widening
    from ..ir.registry import lookup

    record = lookup(op)
    arrays = [to_numpy(a, d) for a, d in zip(args, in_dtypes)]
    dtypes = [to_dtype(d) for d in out_dtypes]
    if needs_widening(record, [to_dtype(d) for d in in_dtypes] + dtypes):
        outs = call_widened(record.reference, np, arrays, attrs, dtypes)
    else:
        out = record.reference(np, *arrays, **attrs)
        outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    return tuple(to_value(o, d, device) for o, d in zip(outs, out_dtypes))


def run_onnx(node, args: Sequence, in_dtypes: Sequence[str], out_dtypes: Sequence[str], device) -> tuple:
    """Run an opaque ONNX node (an :class:`~chunkc.ir.onnx_node.OnnxNode`) on the host."""
    arrays = [to_numpy(a, d) for a, d in zip(args, in_dtypes)]
    return tuple(to_value(o, d, device) for o, d in zip(node(*arrays), out_dtypes))


def host_empty(shape: tuple, short: str) -> np.ndarray:
    """A chunk buffer of a dtype PyTorch cannot compute in: a NumPy array."""
    return np.empty(shape, dtype=to_dtype(short).numpy)


__all__ = ["TORCH_NATIVE", "runs_on_host", "storage_dtype", "weight_tensor", "reference_rule", "onnx_rule",
           "to_numpy", "to_value", "host_reference", "run_onnx", "host_empty", "is_host_array"]
