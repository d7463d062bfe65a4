"""Passes over the IR: one module per pass or analysis, run by name through the pass manager.

Importing this package registers the built-in passes (``builtin``, ``causal_mask``) by name.
"""

from . import builtin, causal_mask  # noqa: F401  (each registers its passes with the manager)
