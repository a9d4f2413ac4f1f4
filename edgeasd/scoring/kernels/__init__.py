"""All Numba kernels of the scoring engine, one module per concept.

- :mod:`~edgeasd.scoring.kernels.score`: distances, row preparation and the fused
  normalized nearest-neighbour minimum (compilation and precision notes there);
- :mod:`~edgeasd.scoring.kernels.neighbours`: neighbour-list and running-sum maintenance,
  densities from the lists;
- :mod:`~edgeasd.scoring.kernels.select`: neighbour lists from float32 BLAS blocks with
  exact distances for the candidates that can enter (the density build);
- :mod:`~edgeasd.scoring.kernels.loo`: leave-one-group-out densities and scores.

The names are re-exported here for callers outside the scoring package.
"""

from edgeasd.scoring.kernels.loo import loo_density_table, loo_scores
from edgeasd.scoring.kernels.neighbours import add_sums, insert_candidates, rho_from_lists
from edgeasd.scoring.kernels.score import (
    COSINE,
    EUCLIDEAN,
    METRICS,
    NORM_DIFFERENCE,
    NORM_NONE,
    NORM_RATIO,
    NORMS,
    cross_dist,
    prepare_rows,
    score_from_dots,
    score_fused,
)
from edgeasd.scoring.kernels.select import SAFETY, exact_dist, exact_ss, gamma, merge_block

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
    "prepare_rows",
    "rho_from_lists",
    "score_from_dots",
    "score_fused",
]
