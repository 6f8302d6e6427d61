"""Evaluation of normalized faces on held-out people (paper Sec. 7 and beyond)."""
