"""Metric and normalization codes of the kernels (no numba: importable by every reader)."""

COSINE = 0
EUCLIDEAN = 1
NORM_RATIO = 0
NORM_DIFFERENCE = 1
NORM_NONE = 2
METRICS = {"cosine": COSINE, "euclidean": EUCLIDEAN}
NORMS = {"ratio": NORM_RATIO, "difference": NORM_DIFFERENCE, "none": NORM_NONE}
