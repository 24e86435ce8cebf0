"""Test and benchmark utilities: the exact Gaussian-mixture model, distribution metrics,
the demo and the benchmarks (``python -m seeds_samplers demo|bench``)."""
