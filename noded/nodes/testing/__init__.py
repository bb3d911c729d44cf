"""Nodes for tests and benchmarks: importable by their full names, never offered in hints."""
