"""Importing this package registers every op record (one module per family)."""

from . import elementwise, linalg, reduce, shape  # noqa: F401
