"""The ONNX frontend: ``from_onnx(model_or_path)`` -> chunkc Graph.

See docs/frontend_onnx.md.  Importing this package also registers the IR ops
that ONNX needs beyond the core set (chunkc/ir/ops/extra_onnx.py).
"""

from chunkc.ir.ops import extra_onnx as _extra_onnx  # noqa: F401  (registers size_tensor, gather_nd, ...)

from .context import DynamicValueError
from .converters import supported_op_types
from .importer import from_onnx

__all__ = ["from_onnx", "supported_op_types", "DynamicValueError"]
