"""Importing this module registers every converter family."""

from . import constant, elementwise, linalg, nn, quantize, reduce, resize, shape, tensor  # noqa: F401
