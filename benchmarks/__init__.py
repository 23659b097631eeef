"""Benchmark harness for optinv: side-by-side speed runs against peers (see README.md)."""
