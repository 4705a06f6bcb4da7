"""Experiments: study grids, calibrated comparisons, the demo."""
