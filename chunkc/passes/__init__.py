"""Passes over the IR: one module per pass or analysis, run by name through the pass manager.

Importing this package registers the built-in passes (``builtin``) by name.
"""

from . import builtin  # noqa: F401  (registers its passes with the manager)
