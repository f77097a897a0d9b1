"""Benchmarks: medians and ratios measured side by side in one run, printed as a table, written as JSON."""
