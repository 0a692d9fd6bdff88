"""Benchmarks; their figures go to BENCHMARKS.md."""
