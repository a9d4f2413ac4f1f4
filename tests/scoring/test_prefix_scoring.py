"""Scoring against the bank as it stood earlier (``ReferenceSet.score(Q, n, rho)``) and
``score_twice``, on every scoring path: the fused loop (euclidean), numpy's one-query
product, the one-pass kernel, and reference blocks (many blocks, a prefix ending inside one).

The incremental calibration (:mod:`edgeasd.scoring.forward`) relies on these: a prefix score
must give the bits the smaller bank gave, and ``score_twice`` the bits of :meth:`score`.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.scoring import ReferenceBank, references
from edgeasd.scoring.validate import check_embeddings


def plain_scores(y: np.ndarray, Q: np.ndarray, rho: np.ndarray, metric: str, norm: str):
    """Normalized nearest-reference scores in float64, straight from the definition."""
    diff = Q.astype(np.float64)[:, None, :] - y.astype(np.float64)[None, :, :]
    ss = (diff**2).sum(axis=2)
    d = np.minimum(0.25 * ss, 1.0) if metric == "cosine" else 0.25 * np.sqrt(ss)
    if norm == "ratio":
        d = d / rho[None, :]
    elif norm == "difference":
        d = d - rho[None, :]
    return d.min(axis=1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 5), min_size=2, max_size=7),
    m=st.sampled_from([1, 2, 5]),
    metric=st.sampled_from(["cosine", "euclidean"]),
    norm=st.sampled_from(["ratio", "difference", "none"]),
    cap=st.sampled_from([None, 1.5]),
    one_pass=st.booleans(),
    small_blocks=st.booleans(),
)
def test_prefix_scores_are_the_scores_of_the_bank_as_it_was(
    seed, sizes, m, metric, norm, cap, one_pass, small_blocks
):
    rng = np.random.default_rng(seed)
    dim = 6
    Q = check_embeddings(rng.normal(size=(m, dim)), dim, metric, "Q")
    patches = {"ONE_PASS_MIN": 1 if one_pass else references.ONE_PASS_MIN}
    if small_blocks:  # blocks of 3 references: many blocks, prefixes ending inside one
        patches.update(BLOCK_MIN=3, BLOCK_ENTRIES=3)
    with mock.patch.multiple(references, **patches):
        bank = ReferenceBank(dim, metric, norm=norm, density_cap=cap)
        ref = bank.references_
        then = []  # (n, rho, scores, rows) after each group
        for g, size in enumerate(sizes):
            bank.enroll(rng.normal(size=(size, dim)), group=f"g{g}")
            scores, rows = ref.score(Q)
            then.append((ref.n, ref.rho.copy(), scores, rows))
        y = bank.embeddings_
        whole = ref.score(Q)[0]
        for n, rho, scores, rows in then:
            got, got_rows = ref.score(Q, n, rho)
            np.testing.assert_array_equal(got, scores)  # bit for bit
            np.testing.assert_array_equal(got_rows, rows)
            want = plain_scores(y[:n], Q, rho, metric, norm)
            scale = np.max(1.0 / rho) if norm == "ratio" else 1.0
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)
            both, prefix = ref.score_twice(Q, n, rho)
            np.testing.assert_array_equal(both, whole)
            # the prefix from the whole product: the same up to the float32 products
            np.testing.assert_allclose(prefix, scores, rtol=1e-6, atol=1e-7 * scale)


def test_score_twice_reads_the_bank_once_for_several_queries(monkeypatch):
    """Several cosine queries: one product per reference block serves both minima."""
    rng = np.random.default_rng(3)
    bank = ReferenceBank(8, density_cap=1.5)
    for g in range(4):
        bank.enroll(rng.normal(size=(5, 8)), group=f"g{g}")
    ref = bank.references_
    Q = check_embeddings(rng.normal(size=(4, 8)), 8, "cosine", "Q")
    rho = ref.rho[:12].copy()
    monkeypatch.setattr(references, "BLOCK_MIN", 6)
    monkeypatch.setattr(references, "BLOCK_ENTRIES", 6)
    calls = []
    real = references.kernels.score_from_dots

    def spy(g, qsq, ysq, w, offset, *args):
        calls.append((g.shape[1], offset))
        return real(g, qsq, ysq, w, offset, *args)

    monkeypatch.setattr(references.kernels, "score_from_dots", spy)
    ref.score_twice(Q, 12, rho)
    # blocks [0, 6), [6, 12), [12, 18), [18, 20): whole and prefix for the first two only
    assert calls == [(6, 0), (6, 0), (6, 6), (6, 6), (6, 12), (2, 18)]
