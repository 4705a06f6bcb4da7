"""Measuring a model: compute counts (MACs, params) and speed benchmarks."""
