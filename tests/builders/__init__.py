"""Tiny random models for tests and smoke benchmarks: never used by the engine itself (and
not installed with it: benchmarks import them from the repository root)."""
