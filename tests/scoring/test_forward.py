"""Forward-chaining calibration scores, the ``auto`` rule and the predicted false-alarm rate,
against plain reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.scoring import ReferenceBank, calibrate
from edgeasd.scoring.calibrate import FORWARD_MARGIN, predicted_rate

from . import reference as ref
from .helpers import MODES, clustered, make_bank


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def reference_forward(
    Y, groups, domains, metric, density, k, r, norm, exclude
) -> tuple[np.ndarray, np.ndarray]:
    """Each group scored against a bank literally rebuilt from the groups that came before it.

    Groups are ordered by their first row; the first two groups of each domain are not scored.
    Also returns each score's distance-error scale: ``1 / min rho`` of its bank under
    ``ratio`` (a float32 distance error is divided by that density), else 1.
    """
    groups, domains = np.asarray(groups), np.asarray(domains)
    order = sorted(set(groups.tolist()), key=lambda g: int(np.flatnonzero(groups == g)[0]))
    out = np.full(len(Y), np.nan)
    scale = np.ones(len(Y))
    seen: dict = {}
    for i, g in enumerate(order):
        inside = groups == g
        dom = domains[np.flatnonzero(inside)[0]]
        before = np.isin(groups, order[:i])
        if seen.get(dom, 0) >= 2:
            raw = ref.raw_density(Y[before], groups[before], metric, density, k, r, exclude)
            rho = ref.finish(raw, None, norm)
            out[inside] = ref.scores(Y[inside], Y[before], rho, metric, norm)[0]
            scale[inside] = 1 / rho.min() if norm == "ratio" else 1.0
        seen[dom] = seen.get(dom, 0) + 1
    return out, scale


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(MODES),
    n=st.integers(2, 20),
    n_groups=st.integers(1, 6),
    exclude=st.booleans(),
)
def test_forward_scores_match_rebuilding_from_earlier_groups(seed, mode, n, n_groups, exclude):
    rng = np.random.default_rng(seed)
    dim = 5
    X = clustered(rng, n, max(1, n // 4), dim)
    groups = rng.integers(0, n_groups, len(X))
    domains = np.where(groups % 3 == 2, "target", "source")
    bank = make_bank(mode, dim, exclude)
    bank.enroll(X, domain=domains.tolist(), group=groups.tolist())
    metric, density, k, r, norm = mode
    want, scale = reference_forward(
        bank.embeddings_.astype(np.float64), groups, domains, metric, density, k, r, norm, exclude
    )
    got = bank.forward_scores_
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    # float32 distances in the bank (~1e-7 absolute), float64 in the reference
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-5 * np.abs(want[ok]) + 1e-6 * scale[ok])


def test_first_two_groups_of_each_domain_are_not_scored(rng):
    bank = ReferenceBank(4)
    bank.enroll(rng.normal(size=(3, 4)), domain="source", group="s1")
    bank.enroll(rng.normal(size=(3, 4)), domain="target", group="t1")
    bank.enroll(rng.normal(size=(3, 4)), domain="target", group="t2")
    bank.enroll(rng.normal(size=(3, 4)), domain="source", group="s2")
    assert np.isnan(bank.forward_scores_).all()
    # auto without forward scores: the LOGO maximum times the margin
    assert bank.threshold_ == pytest.approx(FORWARD_MARGIN * np.nanmax(bank.loo_scores_))
    assert "leave-one-group-out" in bank.threshold_rule_
    single = ReferenceBank(4)
    single.enroll(rng.normal(size=(3, 4)), group="only")
    assert np.isnan(single.threshold_) and "uncalibrated" in single.threshold_rule_
    bank.enroll(rng.normal(size=(2, 4)), domain="target", group="t3")
    f = bank.forward_scores_
    assert np.isnan(f[:12]).all() and np.isfinite(f[12:]).all()
    # forward scores of one group only: the LOGO maximum counts too (MIN_FORWARD_GROUPS)
    top = max(f[12:].max(), np.nanmax(bank.loo_scores_))
    assert bank.threshold_ == pytest.approx(FORWARD_MARGIN * top)


@settings(max_examples=200, deadline=None)
@given(
    f=st.lists(st.one_of(st.floats(0, 50, allow_nan=False), st.just(float("nan"))), max_size=30),
    t=st.floats(0, 200, allow_nan=False),
    margin=st.floats(0.5, 4),
)
def test_predicted_rate_is_the_corrected_share_above_the_threshold(f, t, margin):
    arr = np.array(f, dtype=float)
    finite = [v for v in f if v == v]
    got = predicted_rate(arr, t, margin)
    if not finite:
        assert np.isnan(got)
        return
    above = sum(1 for v in finite if margin * v > t)
    assert got == pytest.approx((1 + above) / (len(finite) + 1))
    assert 1 / (len(finite) + 1) <= got <= 1


@settings(max_examples=100, deadline=None)
@given(
    f=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=20),
    floor=st.one_of(st.just(-np.inf), st.floats(0, 100)),
)
def test_auto_rule_is_the_margin_times_the_largest_forward_score_or_the_floor(f, floor):
    loo = np.full(len(f), np.nan)
    t, text = calibrate.threshold(loo, "auto", 0.95, floor, np.array(f))
    assert t == pytest.approx(max(FORWARD_MARGIN * max(f), floor))
    assert ("floor" in text) == (floor > FORWARD_MARGIN * max(f))
    # from fewer than MIN_FORWARD_GROUPS groups, the LOGO maximum counts too
    loo = np.array([v * 1.5 for v in f])
    few, text = calibrate.threshold(loo, "auto", 0.95, floor, np.array(f), forward_groups=1)
    assert few == pytest.approx(max(FORWARD_MARGIN * 1.5 * max(f), floor))
    enough, _ = calibrate.threshold(
        loo, "auto", 0.95, floor, np.array(f), forward_groups=calibrate.MIN_FORWARD_GROUPS
    )
    assert enough == pytest.approx(t)


def test_only_the_latest_groups_are_scored_in_large_banks(rng, monkeypatch):
    from edgeasd.scoring import forward

    X = rng.normal(size=(16, 4))
    groups = [i // 2 for i in range(16)]  # 8 groups, one domain: groups 2..7 eligible
    bank = ReferenceBank(4)
    bank.enroll(X, group=groups)
    full = forward.forward_scores(bank.references_)
    monkeypatch.setattr(forward, "MAX_SCORED_GROUPS", 2)
    capped = forward.forward_scores(bank.references_)
    assert np.isfinite(full[4:]).all() and np.isnan(capped[:12]).all()
    np.testing.assert_array_equal(capped[12:], full[12:])
