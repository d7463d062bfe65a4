"""Benchmarks for chunkc: a model zoo (benchmarks.models) and benchmark scripts."""
