"""The PyTorch frontend: ``torch.export`` -> chunkc IR.

    g = frontends.pytorch.from_torch(module, args, kwargs=None, dynamic_shapes=None,
                                     opaque_unknown=False)

See docs/frontend_torch.md: the decomposition table, symbol naming, the
supported ATen ops (:func:`supported_ops`), and how unmapped ops are reported.
"""

from __future__ import annotations

from .converters import supported_ops
from .decompositions import decomposition_table, preserved_ops
from .export import ExportError
from .importer import from_torch, import_program

__all__ = ["from_torch", "import_program", "supported_ops", "preserved_ops", "decomposition_table", "ExportError"]
