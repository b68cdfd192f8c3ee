"""Evaluation: metrics, benchmark task loaders, the text benchmark runner and its reports."""
