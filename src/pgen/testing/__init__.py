"""Tiny random models for tests and smoke benchmarks: never used by the engine itself."""
