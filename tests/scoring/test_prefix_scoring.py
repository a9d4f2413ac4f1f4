"""Scoring against the bank as it stood earlier (``ReferenceSet.score(Q, n, rho)``) on every
scoring path (the fused loop (euclidean), numpy's one-query product, the one-pass kernel, and
reference blocks: many blocks, a prefix ending inside one), and the scores
``ReferenceSet.append(..., against=...)`` computes from the products of its density update.

The incremental calibration (:mod:`edgeasd.scoring.forward`) relies on these: a prefix score
must give the bits the smaller bank gave, and an append's scores the scores of
:meth:`score` up to the float32 rounding of the products.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.scoring import ReferenceBank, references
from edgeasd.scoring import density as density_module
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
        for n, rho, scores, rows in then:
            got, got_rows = ref.score(Q, n, rho)
            np.testing.assert_array_equal(got, scores)  # bit for bit
            np.testing.assert_array_equal(got_rows, rows)
            want = plain_scores(y[:n], Q, rho, metric, norm)
            scale = np.max(1.0 / rho) if norm == "ratio" else 1.0
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=7),
    m=st.sampled_from([1, 3, 20]),
    metric=st.sampled_from(["cosine", "euclidean"]),
    density=st.sampled_from(["knn", "gwrp-all"]),
    norm=st.sampled_from(["ratio", "difference", "none"]),
    cap=st.sampled_from([None, 1.5]),
    small_blocks=st.booleans(),
)
def test_append_scores_the_new_rows_against_earlier_banks(
    seed, sizes, m, metric, density, norm, cap, small_blocks
):
    """``append(against=...)``: the new rows' scores against the bank as it stood after each
    earlier group and against the bank just before the append (``rho=None``), equal to
    :meth:`score`'s up to the float32 products (row blocks of 2 and candidate blocks of 3
    with ``small_blocks``: prefixes ending inside a block, and new rows meeting new rows)."""
    rng = np.random.default_rng(seed)
    dim = 6
    kind = ("knn", 1, None) if density == "knn" else ("gwrp", 1, 1.0)
    bank = ReferenceBank(dim, metric, *kind, norm=norm, density_cap=cap)
    ref = bank.references_
    then = []
    for g, size in enumerate(sizes):
        bank.enroll(rng.normal(size=(size, dim)), group=f"g{g}")
        then.append((ref.n, ref.rho.copy()))
    X = check_embeddings(rng.normal(size=(m, dim)), dim, metric, "X")
    want = [ref.score(X, n, rho)[0] for n, rho in then] + [ref.score(X)[0]]
    scale = max(np.max(1.0 / rho) for _, rho in then) if norm == "ratio" else 1.0
    codes = np.full(m, ref.group_labels.codes(["new"])[0])
    patches = {"BLOCK_ROWS": 2, "BLOCK_COLS": 3} if small_blocks else {"THIN_ROWS": 16}
    with mock.patch.multiple(density_module, **patches):
        _, _, got = ref.append(X, codes, np.zeros(m, np.int64), 0.0, against=[*then, (ref.n, None)])
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7 * scale)


def test_an_append_reads_the_bank_once_for_its_forward_scores(monkeypatch):
    """Issue 21: under cosine the scores come from the density update's own products; no
    second pass over the bank (:meth:`ReferenceSet.score`)."""
    rng = np.random.default_rng(3)
    bank = ReferenceBank(8, density_cap=1.5)
    for g in range(4):
        bank.enroll(rng.normal(size=(5, 8)), group=f"g{g}")
    ref = bank.references_
    X = check_embeddings(rng.normal(size=(6, 8)), 8, "cosine", "X")
    want = ref.score(X)[0], ref.score(X, 12, ref.rho[:12].copy())[0]

    def fail(*_a, **_k):
        raise AssertionError("a second read of the bank")

    monkeypatch.setattr(references.ReferenceSet, "score", fail)
    products = []
    real = references.kernels.thin_dots
    monkeypatch.setattr(
        references.kernels, "thin_dots", lambda *a: (products.append(a[1:5]), real(*a))
    )
    _, _, got = ref.append(X, np.full(6, 99), np.zeros(6, np.int64), 0.0, against=[
        (ref.n, None), (12, ref.rho[:12].copy())
    ])  # fmt: skip
    assert products == [(20, 26, 0, 26)]  # one product: the new rows against every row
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
