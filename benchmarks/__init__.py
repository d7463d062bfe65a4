"""Benchmarks for chunkc: a model zoo (chunkc.zoo) and benchmark scripts."""
