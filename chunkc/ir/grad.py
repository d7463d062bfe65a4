"""What a training step keeps between its forward and its backward, read from the op records.

A value *requires grad* when it is floating point and depends on a differentiable graph
input: in a training graph every floating-point input (a parameter, or an activation
fed in) is differentiable; constants (buffers, masks) never are.  A node is *recorded*
by autograd when one of its inputs requires grad and one of its outputs is floating
point; its backward then needs what its op record's ``saves`` names (what the op's
PyTorch lowering saves):

* ``"inputs"``   every input (the default: most backward formulas read the inputs);
* ``"outputs"``  every output (exp, tanh, sigmoid, softmax: the result is the derivative's
                 ingredient);
* ``"cross"``    each input that another input's gradient needs, saved only when that other
                 input requires grad: for products (mul, matmul, linear, einsum), the
                 activation is kept for the weight's gradient and the weight for the
                 activation's — ``x * 0.5`` keeps nothing large;
* an ``int``     that input position (where's condition, take's indices);
* ``()``         nothing: the backward needs only shapes (views, add, concat, sum).

The training memory model (:mod:`chunkc.passes.train_memory`) and the PyTorch training
backend (:mod:`chunkc.backends.torch_train`) read only these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..errors import IRError

if TYPE_CHECKING:  # type hints only: the IR's graph module imports the registry, which imports this
    from .graph import Graph, Node, Value

SAVE_TOKENS = ("inputs", "outputs", "cross")


def check_saves(op: str, saves, max_inputs: int | None) -> None:
    """Refuse a ``saves`` entry that is neither a token nor an input position of the op."""
    if not isinstance(saves, tuple):
        raise IRError(f"op {op}: saves must be a tuple (of {', '.join(SAVE_TOKENS)} or input positions), "
                      f"got {saves!r}")
    for item in saves:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise IRError(f"op {op}: saves entry {item!r} is neither a token nor an input position")
        if isinstance(item, str) and item not in SAVE_TOKENS:
            raise IRError(f"op {op}: saves entry {item!r} is not one of {', '.join(SAVE_TOKENS)}")
        if isinstance(item, int) and (item < 0 or (max_inputs is not None and item >= max_inputs)):
            raise IRError(f"op {op}: saves names input {item}, but the op takes at most {max_inputs} input(s)")


def differentiable_inputs(graph: "Graph") -> list["Value"]:
    """The graph inputs a training step differentiates: every floating-point input."""
    return [v for v in graph.inputs if v.dtype.is_floating]


def requires_grad(graph: "Graph", inputs: Iterable["Value"] | None = None) -> set["Value"]:
    """Every value that requires grad when ``inputs`` (default: :func:`differentiable_inputs`) do."""
    out = set(differentiable_inputs(graph) if inputs is None else inputs)
    for node in graph.nodes:
        if any(v in out for v in node.inputs):
            out.update(o for o in node.outputs if o.dtype.is_floating)
    return out


def is_recorded(node: "Node", requires: set["Value"]) -> bool:
    """Whether autograd records ``node`` (it has a backward to run)."""
    return any(o in requires for o in node.outputs)


def saved_values(node: "Node", requires: set["Value"]) -> list["Value"]:
    """The values ``node``'s backward keeps alive from the forward (none when not recorded)."""
    if not is_recorded(node, requires):
        return []
    out: dict["Value", None] = {}
    for item in node.op.saves:
        if item == "inputs":
            out.update(dict.fromkeys(node.inputs))
        elif item == "outputs":
            out.update(dict.fromkeys(node.outputs))
        elif item == "cross":
            for i, v in enumerate(node.inputs):
                if any(u in requires for j, u in enumerate(node.inputs) if j != i):
                    out[v] = None
        elif item < len(node.inputs):
            out[node.inputs[item]] = None
    return list(out)


def gradient_inputs(node: "Node", requires: set["Value"]) -> list[int]:
    """Input positions of ``node`` that its backward sends a gradient to."""
    return [i for i, v in enumerate(node.inputs) if v in requires] if is_recorded(node, requires) else []


__all__ = ["SAVE_TOKENS", "check_saves", "differentiable_inputs", "requires_grad", "is_recorded", "saved_values",
           "gradient_inputs"]
