"""Importing this module registers every converter family."""

from . import constant, elementwise, linalg, nn, quantize, recurrent, reduce, resize, shape, signal, tensor  # noqa: F401
