"""Benchmarks of the pipeline: load generators, scenarios and the report they produce."""
