"""The kernels against the plain-numpy reference, for every metric x density x norm."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.scoring import references as bank_module
from edgeasd.scoring.validate import check_embeddings

from . import reference as ref
from .helpers import MODES, clustered, make_bank


def _check_scores(bank, mode, Q, rtol, atol_distance):
    metric, density, k, r, norm = mode
    Y = bank.embeddings_.astype(np.float64)
    raw = ref.raw_density(Y, bank.groups_, metric, density, k, r, bank.exclude_same_group)
    rho = ref.finish(raw, None, norm)
    np.testing.assert_allclose(bank.density_, rho, rtol=1e-6, atol=1e-12)
    # The reference sees the query as the bank stores it (float32, unit norm under cosine);
    # that quantization is tested on its own in test_bank.py.
    Qb = check_embeddings(Q, bank.dim, metric, "Q").astype(np.float64)
    want, S = ref.scores(Qb, Y, rho, metric, norm)
    got, nearest = bank.score(Q, return_nearest=True)
    # Stored float32 unit vectors carry ~1e-7 relative distance error; a distance error
    # e changes a ratio score by e / rho.
    atol = atol_distance * max(1.0, float(np.abs(S).max() if norm != "ratio" else 1.0))
    tol = rtol * np.abs(want) + atol * (1 / rho.min() if norm == "ratio" else 1.0)
    assert np.all(np.abs(got - want) <= tol), (got, want)
    pos = np.searchsorted(bank.ids_, nearest)
    attained = S[np.arange(len(Q)), pos]
    assert np.all(np.abs(attained - want) <= tol)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(MODES),
    n_dense=st.integers(1, 25),
    n_sparse=st.integers(0, 6),
    dim=st.integers(2, 9),
    n_groups=st.integers(1, 4),
    exclude=st.booleans(),
)
def test_kernels_match_reference(seed, mode, n_dense, n_sparse, dim, n_groups, exclude):
    rng = np.random.default_rng(seed)
    X = clustered(rng, n_dense, n_sparse, dim)
    bank = make_bank(mode, dim, exclude)
    bank.enroll(X, group=rng.integers(0, n_groups, len(X)).tolist())
    Q = np.vstack([clustered(rng, 2, 2, dim), X[:1]])
    # the fused single-pass kernel (float32 differences, no cancellation), one query at a time
    saved = bank_module.BATCH_MIN
    try:
        bank_module.BATCH_MIN = 10**9
        for q in Q:
            _check_scores(bank, mode, q[None, :], rtol=1e-6, atol_distance=2e-7)
    finally:
        bank_module.BATCH_MIN = saved
    # the default path: BLAS products for cosine (~1e-7 absolute distance error)
    _check_scores(bank, mode, Q, rtol=1e-5, atol_distance=1e-6)
    _check_scores(bank, mode, Q[:1], rtol=1e-5, atol_distance=1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(MODES),
    n=st.integers(2, 24),
    n_groups=st.integers(1, 5),
    exclude=st.booleans(),
)
def test_leave_one_group_out_matches_rebuilding(seed, mode, n, n_groups, exclude):
    rng = np.random.default_rng(seed)
    dim = 5
    X = clustered(rng, n, max(1, n // 4), dim)
    groups = rng.integers(0, n_groups, len(X))
    bank = make_bank(mode, dim, exclude)
    bank.enroll(X, group=groups.tolist())
    metric, density, k, r, norm = mode
    want = ref.loo_scores(
        bank.embeddings_.astype(np.float64), groups, metric, density, k, r, norm, exclude
    )
    got = bank.loo_scores_
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    scale = 1 / bank.density_.min() if norm == "ratio" else 1.0
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("r", [0.9, 0.99])
def test_gwrp_truncation_stays_within_tolerance(r):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6))
    bank = make_bank(("euclidean", "gwrp", 1, r, "difference"), 6)
    bank.enroll(X)
    raw = ref.raw_density(
        bank.embeddings_.astype(np.float64), bank.groups_, "euclidean", "gwrp", 1, r, False
    )
    D = ref.distances(bank.embeddings_, bank.embeddings_, "euclidean")
    span = D.max() - D[D > 0].min()
    assert bank.references_.neighbours.width < 399 or r == 0.99  # truncated for r = 0.9
    # truncation error bound plus float32 distance rounding (~1e-7 relative)
    assert np.all(np.abs(bank.density_ - raw) <= 1e-9 * span + 1e-6 * raw)


@pytest.mark.parametrize("mode", [MODES[0], MODES[-3]])  # knn K=1 / GWRP r=1, ratio
def test_large_banks_sample_whole_groups_with_exact_scores(monkeypatch, mode):
    from edgeasd.scoring import calibrate

    rng = np.random.default_rng(5)
    X = clustered(rng, 40, 20, 5)
    groups = rng.integers(0, 12, len(X))
    bank = make_bank(mode, 5, exclude_same_group=True)
    bank.enroll(X, group=groups.tolist())
    full = calibrate.loo_scores(bank.references_)
    monkeypatch.setattr(calibrate, "MAX_LOO_ROWS", 20)
    part = calibrate.loo_scores(bank.references_)
    done = np.isfinite(part)
    assert 0 < done.sum() <= 20 + np.bincount(groups).max()
    assert len(set(groups[done]) & set(groups[~done])) == 0  # whole groups only
    np.testing.assert_allclose(part[done], full[done], rtol=1e-12)
