"""Evaluation on benchmark folders: importers for published benchmarks, metrics and reports."""
