"""RNN, GRU and LSTM: opaque nodes that onnxruntime runs (a recurrence is a barrier to chunking).

onnxruntime's kernels take only ``layout=0`` (sequence-major: X [seq, batch, input]).
A batch-major node (``layout=1``: X [batch, seq, input], states [batch, directions,
hidden]) is run as the sequence-major node between transposes: X and the initial
states are transposed in, Y ([seq, directions, batch, hidden]) and the final states
transposed back out.
"""

from __future__ import annotations

import onnx

from ..context import Slot
from ..opaque import opaque_node
from .registry import converter

_STATE_INPUTS = {"RNN": (5,), "GRU": (5,), "LSTM": (5, 6)}  # initial_h (and initial_c)
_STATE_OUTPUTS = (1, 2)  # Y_h (and Y_c)


@converter("RNN", "GRU", "LSTM", opaque=True)
def recurrent(ctx, node):
    if int(node.attr("layout", 0)) == 0:
        for k, value in opaque_node(ctx, node).items():
            ctx.set(k, value)
        return
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    layout = next(a for a in proto.attribute if a.name == "layout")
    proto.attribute.remove(layout)
    swap = (1, 0, 2)
    for i in (0,) + _STATE_INPUTS[node.op_type]:
        if ctx.has(i):
            proto.input[i] = _fresh_name(ctx, f"{node.inputs[i]}__seq_major")
            ctx.env[proto.input[i]] = Slot(value=ctx.op("permute", ctx.value(i), dims=swap))
    for k, name in enumerate(proto.output):
        if name:
            proto.output[k] = _fresh_name(ctx, f"{name}__seq_major")
    outs = opaque_node(ctx, node, proto)
    for k, value in outs.items():
        ctx.set(k, ctx.op("permute", value, dims=(2, 0, 1, 3) if k == 0 else swap))


def _fresh_name(ctx, base: str) -> str:
    name, k = base, 1
    while name in ctx.env:
        name, k = f"{base}_{k}", k + 1
    return name
