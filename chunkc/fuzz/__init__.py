"""The differential fuzzer: random model-like graphs, planned and run every way chunkc can,
held against the unchunked reference interpreter (see docs/fuzzing.md)."""

from .graphs import Budget, FuzzCase, make_inputs, random_case

__all__ = ["Budget", "FuzzCase", "make_inputs", "random_case"]
