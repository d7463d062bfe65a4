"""The converter table: one small function per ATen op family.

Converters are keyed by ATen *overload packet* (``aten.add`` covers
``add.Tensor`` and ``add.Scalar``); each receives its arguments bound by name
to the overload's schema (see :mod:`frontends.pytorch.context`).  The importer
looks a node's packet up here and never tests names.
"""

from __future__ import annotations

from .registry import CONVERTERS, Converter, converts, lookup, supported_ops

from . import (  # noqa: F401  (each module registers its converters)
    attention, conv, creation, elementwise, indexing, linalg, norm, reduce, shape,
)

__all__ = ["CONVERTERS", "Converter", "converts", "lookup", "supported_ops"]
