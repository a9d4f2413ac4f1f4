"""The BLAS-filtered neighbour selection (kernels.select) against plain numpy selection."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.scoring import kernels
from edgeasd.scoring.density import NeighbourState, base_weights, list_length


def _rows(rng: np.random.Generator, n: int, dim: int, kind: str) -> np.ndarray:
    """float32 rows that stress the filter: near ties, duplicates, opposite rows, scales."""
    if kind == "ties":  # all rows at nearly the same distance from each other
        x = np.eye(dim)[rng.integers(0, dim, n)] + 1e-4 * rng.normal(size=(n, dim))
    elif kind == "opposite":  # cosine distances clipped at 1: ties broken by id
        base = rng.normal(size=dim)
        x = np.where(rng.random(n)[:, None] < 0.5, base, -base) + 1e-7 * rng.normal(size=(n, dim))
    elif kind == "scales":  # euclidean rows of very different norms
        x = rng.normal(size=(n, dim)) * 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    else:
        c = rng.normal(size=(3, dim))
        x = c[rng.integers(0, 3, n)] + 0.05 * rng.normal(size=(n, dim))
    x[rng.integers(0, n)] = x[rng.integers(0, n)]  # an exact duplicate
    return x


def _numpy_lists(y, ids, grp, exclude, metric, width):
    """Plain selection: every exact distance, sorted by (distance, id), first ``width``."""
    d = kernels.exact_dist(y, y, metric)
    out_id = np.full((len(y), width), -1)
    out_d = np.full((len(y), width), np.inf)
    for i in range(len(y)):
        ok = ids != ids[i]
        if exclude:
            ok &= grp != grp[i]
        cand = np.flatnonzero(ok)
        order = np.lexsort((ids[cand], d[i, cand]))[:width]
        out_id[i, : order.size] = ids[cand[order]]
        out_d[i, : order.size] = d[i, cand[order]]
    return out_id, out_d


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    kind=st.sampled_from(["clusters", "ties", "opposite", "scales"]),
    metric=st.sampled_from(["cosine", "euclidean"]),
    n=st.integers(2, 40),
    dim=st.sampled_from([3, 8, 13, 64]),
    k=st.integers(1, 5),
    exclude=st.booleans(),
    splits=st.lists(st.integers(1, 39), max_size=3),
)
def test_filtered_selection_equals_plain_selection(seed, kind, metric, n, dim, k, exclude, splits):
    rng = np.random.default_rng(seed)
    x = _rows(rng, n, dim, kind)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = x.astype(np.float32)
    ysq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    ids = np.arange(n, dtype=np.int64) * 2 + 1  # ids differ from positions
    grp = rng.integers(0, 4, n).astype(np.int64)
    code = kernels.METRICS[metric]
    state = NeighbourState(k, base_weights("knn", k, None), exclude)
    cuts = [*sorted({c for c in splits if c < n}), n]
    start = 0
    for end in cuts:  # enrolled in a few batches: old rows receive later candidates
        state.add(y, ysq, start, end - start, ids, grp, code)
        start = end
    want_id, want_d = _numpy_lists(y, ids, grp, exclude, code, state.width)
    np.testing.assert_array_equal(state.nb_id[:n], want_id)
    np.testing.assert_array_equal(state.nb_d[:n], want_d)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dim=st.integers(1, 70))
def test_exact_distance_is_symmetric_and_accurate(seed, dim):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(5, dim)).astype(np.float32)
    b = rng.normal(size=(4, dim)).astype(np.float32)
    for metric, code in kernels.METRICS.items():
        d = kernels.exact_dist(a, b, code)
        np.testing.assert_array_equal(d, kernels.exact_dist(b, a, code).T)
        ss = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
        want = np.minimum(0.25 * ss, 1.0) if metric == "cosine" else 0.25 * np.sqrt(ss)
        np.testing.assert_allclose(d, want, rtol=4 * kernels.gamma(dim + 2))


def test_the_error_bound_covers_the_blas_product():
    """The bound the filter relies on holds for the BLAS in use (with a large margin)."""
    rng = np.random.default_rng(0)
    dim = 512
    y = rng.normal(size=(300, dim)).astype(np.float32)
    g = (y @ y.T).astype(np.float64)
    exact = y.astype(np.float64) @ y.T.astype(np.float64)
    norms = np.linalg.norm(y.astype(np.float64), axis=1)
    err = np.abs(g - exact) / np.outer(norms, norms)
    assert err.max() <= kernels.gamma(dim)
    assert list_length("knn", 3, None) == 3
