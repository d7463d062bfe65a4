"""Opaque nodes: an ONNX op runs on the host through onnxruntime (chunkc/backends/host_call.py);
an ATen target is a validated lookup through ``torch.ops``.  Also the ops on bits."""

from __future__ import annotations

from ..host_call import onnx_rule, reference_rule
from ...ir.dtypes import dtype as to_dtype
from ..torch_runtime import parse_target, torch_op
from ._base import rule, torch_dtype


# -- opaque ------------------------------------------------------------------------------


@rule("opaque")
def _opaque(ctx):
    if ctx.attrs.get("definition") is not None:  # an ONNX op: onnxruntime runs it on the host
        return onnx_rule(ctx)
    target = ctx.attrs["target"]
    ns, name, overload = parse_target(target)  # validated here, and again when the module loads
    returns = len(torch_op(target)._schema.returns)
    if returns != len(ctx.node.outputs):
        raise ctx.fail(f"target {target} returns {returns} value(s) but the node declares "
                       f"{len(ctx.node.outputs)} result type(s)")
    op = ctx.helper(f"op_{name}", f"rt.torch_op({target!r})")
    return f"{op}({', '.join(ctx.args)})"


# -- ops on bits (chunkc/ir/ops/extra_dtypes.py) ---------------------------------------------------

rule("bitcast")(lambda ctx: f"{ctx.arg(0)}.view({torch_dtype(to_dtype(ctx.attrs['dtype']))}).clone()")
rule("cast_e8m0")(reference_rule)  # float8_e8m0fnu has no PyTorch kernels: the NumPy reference, on the host


# -- Fourier transforms (chunkc/ir/ops/extra_signal.py): the NumPy reference, on the host -----------

rule("dft", "stft")(reference_rule)
rule("decode_image")(reference_rule)  # Pillow decodes, on the host
