"""scoring.max_references: the reduction keeps the bank at its cap and consistent."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.scoring import ReferenceBank, reduce
from edgeasd.scoring.reduce import HYSTERESIS, choose_removals, reduce_bank


def _feedback_stream(rng: np.random.Generator, n_enrollments: int, dim: int):
    """(X, domain, group) of feedback enrollments: 3 conditions drifting over time."""
    centres = rng.normal(size=(3, dim))
    drift = rng.normal(size=(3, dim)) * 0.02
    for e in range(n_enrollments):
        c = int(rng.integers(0, 3))
        size = int(rng.integers(2, 7))
        base = centres[c] + drift[c] * e / 10 + 0.3 * rng.normal(size=dim)
        X = base + 0.05 * rng.normal(size=(size, dim))  # overlapping windows: near twins
        yield X, f"cond{c}", f"fb-{e}"


def _scratch(bank: ReferenceBank, originals: dict[int, np.ndarray]) -> ReferenceBank:
    """The survivors enrolled from scratch, group by group in their enrollment order."""
    fresh = ReferenceBank(bank.dim)
    ids, groups, domains = bank.ids_, bank.groups_, bank.domains_
    order = []
    for g in groups:  # groups in order of first id (ids increase with enrollment)
        if g not in order:
            order.append(g)
    for g in order:
        rows = np.flatnonzero(groups == g)
        fresh.enroll(
            np.array([originals[int(i)] for i in ids[rows]]), domain=domains[rows[0]], group=g
        )
    return fresh


def _simulated_feedback(n_enrollments: int, cap: int, dim: int, check_every: int) -> None:
    rng = np.random.default_rng(7)
    bank = ReferenceBank(dim)
    originals: dict[int, np.ndarray] = {}
    reductions = 0
    seen_domains: set[str] = set()
    for e, (X, domain, group) in enumerate(_feedback_stream(rng, n_enrollments, dim)):
        new = bank.enroll(X, domain=domain, group=group)
        originals.update(zip(new.tolist(), X, strict=True))
        seen_domains.add(domain)
        done = reduce_bank(bank, cap)
        assert len(bank) <= cap
        if done is None:
            continue
        reductions += 1
        # later groups' forward / session-forward scores changed: replayed on next use
        assert bank.calibration_.forward_stale
        assert done.after == len(bank) == int(cap * HYSTERESIS)
        assert set(bank.domains_) == seen_domains  # every condition stays represented
        if e + 1 <= int(cap * HYSTERESIS):  # as many groups as fit: each keeps a reference
            assert done.groups_lost == 0 and set(bank.groups_) == {f"fb-{i}" for i in range(e + 1)}
        if reductions % check_every == 0 or e == n_enrollments - 1:
            fresh = _scratch(bank, originals)
            np.testing.assert_allclose(bank.density_, fresh.density_, rtol=1e-12, atol=1e-15)
            assert bank.threshold_ == pytest.approx(fresh.threshold_, rel=1e-9, nan_ok=True)
            np.testing.assert_allclose(bank.forward_scores_, fresh.forward_scores_, rtol=1e-9)
            np.testing.assert_allclose(
                bank.session_forward_scores_, fresh.session_forward_scores_, rtol=1e-9
            )
    assert reductions >= 2


def test_a_ci_sized_stream_of_feedback_stays_at_the_cap_and_consistent():
    _simulated_feedback(n_enrollments=120, cap=150, dim=16, check_every=3)


@pytest.mark.slow
def test_a_simulated_year_of_feedback_enrollments_stays_at_the_cap():
    """Two feedback enrollments a day for a year, cap 2,000 (dim 64)."""
    _simulated_feedback(n_enrollments=730, cap=2000, dim=64, check_every=10)


def test_near_duplicates_go_first_and_every_group_and_domain_stays():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 8))
    y = np.vstack([base, base[:4] + 1e-6])  # rows 10..13 duplicate rows 0..3
    y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    ysq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    grp = np.array([0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 0, 1, 8, 9])
    dom = np.zeros(14, np.int64)
    gone = choose_removals(y, ysq, grp, dom, target=10)
    # one of each duplicate pair, the older one, where its group keeps a member
    assert gone.tolist() == [0, 1, 2, 3]
    # then every reference is the last of its group: only now does a group give way
    gone = choose_removals(y, ysq, grp, dom, target=9)
    assert len(gone) == 5 and {0, 1, 2, 3} <= set(gone.tolist())


def test_the_last_reference_of_a_domain_is_never_removed():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(12, 4)).astype(np.float32)
    ysq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    dom = np.array([0] * 11 + [1])
    gone = choose_removals(y, ysq, np.arange(12), dom, target=1)
    assert 11 not in gone and len(gone) == 10  # one of domain 0 and the one of domain 1


def test_a_bank_within_its_cap_is_untouched_and_bad_caps_are_refused():
    bank = ReferenceBank(4)
    bank.enroll(np.eye(4), group="a")
    assert reduce_bank(bank, 4) is None and len(bank) == 4
    with pytest.raises(Exception, match="positive integer"):
        reduce_bank(bank, 0)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
    k=st.integers(1, 9),
    blocks=st.sampled_from([(256, 4096), (3, 5)]),
)
def test_nearest_rows_are_the_plain_nearest(seed, n, k, blocks):
    """``_nearest`` (float32 product blocks merged into sorted lists) against a plain float64
    search: the same distances to float32 rounding, sorted, -1 / inf padded past n - 1."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 6)).astype(np.float32)
    y[n // 2 :] = y[: n - n // 2] + 1e-3 * rng.normal(size=(n - n // 2, 6))  # near twins
    ysq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    with mock.patch.multiple(reduce, _BLOCK=blocks[0], _COLS=blocks[1]):
        rows, dist = reduce._nearest(y, ysq, k)
    y64 = y.astype(np.float64)
    full = ((y64[:, None, :] - y64[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(full, np.inf)
    want = np.sort(full, axis=1)[:, : min(k, n - 1)]
    have = min(k, n - 1)
    assert (rows[:, have:] == -1).all() and np.isinf(dist[:, have:]).all()
    assert (rows[:, :have] != np.arange(n)[:, None]).all()
    scale = 1e-5 * (ysq[:, None] + 1.0)
    assert np.all(np.abs(dist[:, :have] - want) <= scale)
    # each listed row's true distance is what the list says, to the same rounding
    listed = np.take_along_axis(full, np.maximum(rows[:, :have], 0), axis=1)
    assert np.all(np.abs(listed - dist[:, :have]) <= scale)
