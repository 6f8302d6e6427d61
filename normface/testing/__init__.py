"""Synthetic data, fake encoders and tiny models for tests, smoke runs and benchmarks; never results."""
