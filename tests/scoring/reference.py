"""Plain-numpy reference implementation of the scoring formulas (issue 2), for tests.

Deliberately naive: full distance matrices, explicit loops, no truncation, float64.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-10


def distances(X: np.ndarray, Y: np.ndarray, metric: str) -> np.ndarray:
    """A(x, y) for all pairs, shape (len(X), len(Y)), straight from the definition."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if metric == "cosine":
        cos = (X @ Y.T) / np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1))
        return 0.5 * (1.0 - cos)
    return 0.25 * np.sqrt(((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1))


def raw_density(Y, groups, metric, density, k, r, exclude_same_group) -> np.ndarray:
    """Density of each reference from its eligible others (NaN: none), shape (N,)."""
    D = distances(Y, Y, metric)
    groups = np.asarray(groups)
    out = np.full(len(Y), np.nan)
    for i in range(len(Y)):
        ok = np.arange(len(Y)) != i
        if exclude_same_group:
            ok &= groups != groups[i]
        d = np.sort(D[i, ok])
        if d.size == 0:
            continue
        if density == "knn":
            out[i] = d[:k].mean()
        else:
            w = np.power(r, np.arange(d.size)) if r > 0 else (np.arange(d.size) == 0) * 1.0
            out[i] = (w / w.sum()) @ d
    return out


def finish(raw: np.ndarray, fallback: float | None, norm: str) -> np.ndarray:
    """Fallback for references without neighbours, then the floor."""
    if fallback is None:
        ok = ~np.isnan(raw)
        fallback = np.median(raw[ok]) if ok.any() else (0.0 if norm == "difference" else 1.0)
    return np.maximum(np.where(np.isnan(raw), fallback, raw), EPS)


def normalized(D: np.ndarray, rho: np.ndarray, norm: str) -> np.ndarray:
    """Normalized distances, rho broadcast over columns."""
    if norm == "ratio":
        return D / rho[None, :]
    if norm == "difference":
        return D - rho[None, :]
    return D


def scores(Q, Y, rho, metric, norm) -> tuple[np.ndarray, np.ndarray]:
    """(min normalized distance, full normalized matrix) of queries Q against Y."""
    S = normalized(distances(Q, Y, metric), rho, norm)
    return S.min(axis=1), S


def loo_scores(Y, groups, metric, density, k, r, norm, exclude_same_group) -> np.ndarray:
    """Leave-one-group-out scores, by literally rebuilding the bank without each group.

    The no-neighbour fallback is the full bank's median density, as documented.
    """
    groups = np.asarray(groups)
    full = raw_density(Y, groups, metric, density, k, r, exclude_same_group)
    ok = ~np.isnan(full)
    fallback = np.median(full[ok]) if ok.any() else (0.0 if norm == "difference" else 1.0)
    out = np.full(len(Y), np.nan)
    for g in np.unique(groups):
        inside = groups == g
        if inside.all():
            continue
        rest = Y[~inside]
        raw = raw_density(rest, groups[~inside], metric, density, k, r, exclude_same_group)
        rho = finish(raw, fallback, norm)
        out[inside] = scores(Y[inside], rest, rho, metric, norm)[0]
    return out
