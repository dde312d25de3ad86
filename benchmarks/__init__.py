"""Benchmarks: scripts that print figures. Run them as ``python -m benchmarks.<name>``."""
