"""Bank construction helpers shared by the scoring tests."""

from __future__ import annotations

import numpy as np

from edgeasd.scoring import ReferenceBank

#: (metric, density, k, r, norm) combinations covering every mode.
MODES = [
    (metric, density, k, r, norm)
    for metric in ("cosine", "euclidean")
    for density, k, r in (
        ("knn", 1, None),
        ("knn", 3, None),
        ("gwrp", 1, 0.0),
        ("gwrp", 1, 0.6),
        ("gwrp", 1, 1.0),
    )
    for norm in ("ratio", "difference", "none")
]


def clustered(rng: np.random.Generator, n_dense: int, n_sparse: int, dim: int) -> np.ndarray:
    """A tight cluster and a loose one (very different densities), shape (n, dim)."""
    a = rng.normal(size=dim)
    b = rng.normal(size=dim)
    dense = a + rng.normal(0, 0.01, (n_dense, dim))
    sparse = b + rng.normal(0, 0.5, (n_sparse, dim))
    return np.vstack([dense, sparse])


def make_bank(mode, dim: int, exclude_same_group: bool = False) -> ReferenceBank:
    """A bank with the given (metric, density, k, r, norm) mode."""
    metric, density, k, r, norm = mode
    return ReferenceBank(
        dim,
        metric=metric,
        density=density,
        k=k,
        r=r,
        norm=norm,
        exclude_same_group=exclude_same_group,
    )
