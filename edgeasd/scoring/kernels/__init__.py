"""All Numba kernels of the scoring engine, one module per concept.

- :mod:`~edgeasd.scoring.kernels.score`: distances, row preparation and the fused
  normalized nearest-neighbour minimum (compilation and precision notes there);
- :mod:`~edgeasd.scoring.kernels.neighbours`: neighbour-list and running-sum maintenance,
  densities from the lists;
- :mod:`~edgeasd.scoring.kernels.select`: neighbour lists from float32 BLAS blocks with
  exact distances for the candidates that can enter (the density build);
- :mod:`~edgeasd.scoring.kernels.loo`: leave-one-group-out densities and scores.

The names are re-exported here for callers outside the scoring package; the kernels load
lazily (``kernels.NAME`` imports its submodule, and numba, on first access).
"""

import importlib
from typing import Any

from edgeasd.scoring.kernels.codes import (
    COSINE,
    EUCLIDEAN,
    METRICS,
    NORM_DIFFERENCE,
    NORM_NONE,
    NORM_RATIO,
    NORMS,
)

#: Submodule of each kernel: imported (with numba) on first access, so that reading a bank
#: (``bank summary``, ``status``) and scoring one window never import numba (64 MB of
#: resident memory and 0.6 s of start-up, measured in BENCHMARKS.md, section costs).
_WHERE = {
    "SAFETY": "select",
    "add_sums": "neighbours",
    "cross_dist": "score",
    "exact_dist": "select",
    "exact_ss": "select",
    "gamma": "select",
    "insert_candidates": "neighbours",
    "loo_density_table": "loo",
    "loo_scores": "loo",
    "merge_block": "select",
    "nearest_merge": "select",
    "prepare_rows": "score",
    "rho_from_lists": "neighbours",
    "score_from_dots": "score",
    "score_from_dots_t": "score",
    "score_fused": "score",
    "score_one_pass": "score",
    "thin_dots": "select",
}


def __getattr__(name: str) -> Any:
    """Import a kernel's submodule on first use (PEP 562)."""
    if name in set(_WHERE.values()):
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "COSINE",
    "EUCLIDEAN",
    "METRICS",
    "NORMS",
    "NORM_DIFFERENCE",
    "NORM_NONE",
    "NORM_RATIO",
    "SAFETY",
    "add_sums",
    "cross_dist",
    "exact_dist",
    "exact_ss",
    "gamma",
    "insert_candidates",
    "loo_density_table",
    "loo_scores",
    "merge_block",
    "nearest_merge",
    "prepare_rows",
    "rho_from_lists",
    "score_from_dots",
    "score_from_dots_t",
    "score_fused",
    "score_one_pass",
    "thin_dots",
]
