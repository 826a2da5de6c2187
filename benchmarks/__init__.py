"""Benchmarks: backprop next to PyTorch on the same models, weights, data and optimizer.

Run ``python benchmarks/run.py --help``; see benchmarks/README.md.
"""
