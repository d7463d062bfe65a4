"""Passes over the IR: one module per pass or analysis, run by name through the pass manager.

Importing this package registers the built-in passes (``builtin``) by name.
"""

from . import builtin, canonicalize, cse, fold_split, written_attention  # noqa: F401  (register their passes with the manager)
