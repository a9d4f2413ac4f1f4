"""Forward-chaining calibration scores, the ``auto`` rule and the predicted false-alarm rate,
against plain reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.scoring import ReferenceBank, calibrate
from edgeasd.scoring.calibrate import FORWARD_MARGIN, ONE_SESSION_MARGIN, predicted_rate

from . import reference as ref
from .helpers import MODES, clustered, make_bank


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def reference_forward(
    Y, groups, domains, metric, density, k, r, norm, exclude, cap=None
) -> tuple[np.ndarray, np.ndarray]:
    """Each group scored against a bank literally rebuilt from the groups that came before it.

    Groups are ordered by their first row. Without a density cap the first two groups of each
    domain are not scored; with one (densities cut at ``cap`` x their median), the first
    group of each domain and any group whose bank holds fewer than two groups.
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
        need = 2 if cap is None else 1
        if seen.get(dom, 0) >= need and i >= 2:
            raw = ref.raw_density(Y[before], groups[before], metric, density, k, r, exclude)
            rho = ref.finish(raw, None, norm)
            if cap is not None:
                rho = np.maximum(np.minimum(rho, cap * np.median(rho)), ref.EPS)
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
    # auto without forward scores: the LOGO maximum times the margin of one-session evidence
    assert bank.threshold_ == pytest.approx(ONE_SESSION_MARGIN * np.nanmax(bank.loo_scores_))
    assert "leave-one-group-out" in bank.threshold_rule_
    single = ReferenceBank(4)
    single.enroll(rng.normal(size=(3, 4)), group="only")
    assert np.isnan(single.threshold_) and "uncalibrated" in single.threshold_rule_
    bank.enroll(rng.normal(size=(2, 4)), domain="target", group="t3")
    f = bank.forward_scores_
    assert np.isnan(f[:12]).all() and np.isfinite(f[12:]).all()
    # forward scores of one group only: the LOGO maximum counts too (MIN_FORWARD_GROUPS)
    top = max(f[12:].max(), np.nanmax(bank.loo_scores_))
    assert bank.threshold_ == pytest.approx(ONE_SESSION_MARGIN * top)  # one session


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
    assert few == pytest.approx(
        max(FORWARD_MARGIN * max(f), ONE_SESSION_MARGIN * 1.5 * max(f), floor)
    )
    enough, _ = calibrate.threshold(
        loo, "auto", 0.95, floor, np.array(f), forward_groups=calibrate.MIN_FORWARD_GROUPS
    )
    assert enough == pytest.approx(t)


def test_the_threshold_follows_the_latest_scored_groups(rng, monkeypatch):
    X = rng.normal(size=(16, 4))
    groups = [i // 2 for i in range(16)]  # 8 groups, one domain: groups 2..7 scored
    bank = ReferenceBank(4)
    bank.enroll(X, group=groups)
    f = bank.forward_scores_
    assert np.isnan(f[:4]).all() and np.isfinite(f[4:]).all()
    # the condition's first scored group (2) leaves the evidence once later ones are scored
    np.testing.assert_array_equal(bank.calibration_scores_[6:], f[6:])
    assert np.isnan(bank.calibration_scores_[:6]).all()
    # enrolled at once: one session, its forward scores take the one-session margin
    assert bank.threshold_ == pytest.approx(ONE_SESSION_MARGIN * f[6:].max())
    monkeypatch.setattr(calibrate, "MAX_FORWARD_GROUPS", 4)  # groups 4..7; 4 is dropped
    bank.calibrate(value=-1.0)
    assert bank.threshold_ == pytest.approx(ONE_SESSION_MARGIN * f[10:].max())


def test_each_condition_s_evidence_takes_the_margin_of_what_it_has_seen(rng):
    """Issue 17: session-forward evidence (a session change seen) takes FORWARD_MARGIN (1.25),
    the forward scores of a condition with one session ONE_SESSION_MARGIN (2); the threshold
    is the largest evidence score times its own margin (the margin 2 for all before)."""
    t0 = 1.7e9
    bank = ReferenceBank(4, density_cap=1.5)
    X = rng.normal(size=(36, 4))
    for g in range(6):  # source: 2 sessions of 3 groups, two hours apart
        at = t0 + (7200.0 if g >= 3 else 0.0) + 60.0 * g
        bank.enroll(X[3 * g : 3 * g + 3], domain="source", group=f"s{g}", at=at)
    for g in range(6):  # target: 6 groups (commissioned), one session, a day later
        at = t0 + 86400.0 + 60.0 * g
        bank.enroll(3.0 + X[18 + 3 * g : 21 + 3 * g], domain="target", group=f"t{g}", at=at)
    assert (FORWARD_MARGIN, ONE_SESSION_MARGIN) == (1.25, 2.0)
    ev, dom = bank.calibration_scores_, bank.domains_
    m = bank.forecast_margins_
    src, tgt = ev[dom == "source"], ev[dom == "target"]
    assert np.isfinite(src).any() and np.isfinite(tgt).any()
    np.testing.assert_array_equal(m[np.isfinite(ev) & (dom == "source")], FORWARD_MARGIN)
    np.testing.assert_array_equal(m[np.isfinite(ev) & (dom == "target")], ONE_SESSION_MARGIN)
    assert np.isnan(m[~np.isfinite(ev)]).all()
    want = max(1.25 * np.nanmax(src), 2.0 * np.nanmax(tgt))
    assert bank.threshold_ == pytest.approx(want)
    assert "their margin (1.25 where a condition has several sessions, 2 within one)" in (
        bank.threshold_rule_
    )


def test_the_fallback_on_few_groups_takes_the_evidence_s_margin(rng):
    """A second session's first group: session-forward evidence from one group, so the LOGO
    maximum counts too, at the session-forward margin (at 2 it lifted the threshold for the
    first groups of every session and dropped it back at the third: threshold_rules)."""
    t0 = 1.7e9
    bank = ReferenceBank(4, density_cap=1.5)
    X = rng.normal(size=(12, 4))
    for g in range(4):  # groups 0-2 at t0, group 3 two hours later
        at = t0 + (7200.0 if g >= 3 else 0.0) + 60.0 * g
        bank.enroll(X[3 * g : 3 * g + 3], domain="source", group=f"g{g}", at=at)
    s = bank.session_forward_scores_
    assert np.isfinite(s[9:]).all() and np.isnan(s[:9]).all()
    top = max(np.nanmax(s), np.nanmax(bank.loo_scores_))
    assert bank.threshold_ == pytest.approx(FORWARD_MARGIN * top)


def test_session_forward_scores_a_later_session_against_the_earlier_ones(rng):
    """Each group of a later session is scored against the bank as that session began."""
    t0 = 1.7e9
    bank = ReferenceBank(4, density_cap=1.5)
    X = rng.normal(size=(18, 4))
    for g in range(6):  # sessions: groups 0-2 at t0, 3-5 two hours later
        at = t0 + (7200.0 if g >= 3 else 0.0) + 60.0 * g
        bank.enroll(X[3 * g : 3 * g + 3], domain="source", group=f"g{g}", at=at)
    earlier = ReferenceBank(4, density_cap=1.5)
    for g in range(3):
        earlier.enroll(X[3 * g : 3 * g + 3], domain="source", group=f"g{g}")
    s = bank.session_forward_scores_
    assert np.isnan(s[:9]).all()
    np.testing.assert_array_equal(s[9:], earlier.score(X[9:]))
    # the condition has session scores: they are its evidence
    np.testing.assert_array_equal(bank.calibration_scores_, s)
    assert bank.threshold_ == pytest.approx(FORWARD_MARGIN * s[9:].max())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(MODES),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=7),
    cap=st.sampled_from([None, 1.0, 1.5, 3.0]),
    exclude=st.booleans(),
)
def test_capped_forward_scores_match_the_reference(seed, mode, sizes, cap, exclude):
    rng = np.random.default_rng(seed)
    dim = 5
    groups = np.repeat(np.arange(len(sizes)), sizes)
    n_sparse = max(1, groups.size // 4)
    X = clustered(rng, groups.size - n_sparse, n_sparse, dim) if groups.size > 1 else None
    X = rng.normal(size=(1, dim)) if X is None else X
    domains = np.where(groups % 3 == 2, "target", "source")
    metric, density, k, r, norm = mode
    bank = ReferenceBank(dim, metric, density, k, r, norm, exclude, density_cap=cap)
    bank.enroll(X, domain=domains.tolist(), group=groups.tolist())
    want, scale = reference_forward(
        bank.embeddings_.astype(np.float64), groups, domains, *mode, exclude, cap
    )
    got = bank.forward_scores_
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-5 * np.abs(want[ok]) + 1e-6 * scale[ok])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    batches=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=6),
    cap=st.sampled_from([None, 1.5]),
)
def test_incremental_calibration_equals_a_from_scratch_one(seed, batches, cap):
    """Issue 21: enrolling group by group keeps exactly the scores and threshold of a replay."""
    rng = np.random.default_rng(seed)
    bank = ReferenceBank(6, density_cap=cap)
    g, at = 0, 1.7e9
    for batch in batches:  # one enroll call per batch, each of several new groups
        labels = [f"g{g + i}" for i, size in enumerate(batch) for _ in range(size)]
        g += len(batch)
        domain = "target" if g % 4 == 3 else "source"
        at += 7200.0 if g % 3 == 0 else 60.0  # some batches start a new session
        bank.enroll(rng.normal(size=(len(labels), 6)), domain=domain, group=labels, at=at)
        assert not bank.calibration_.forward_stale  # kept incrementally, no replay due
        fresh = calibrate.Calibration(rule="auto")
        fresh.update(bank.references_)  # from scratch: replays every enrollment
        np.testing.assert_array_equal(bank.forward_scores_, fresh.forward)
        np.testing.assert_array_equal(bank.session_forward_scores_, fresh.session_forward)
        t = bank.threshold_
        assert t == fresh.threshold or (np.isnan(t) and np.isnan(fresh.threshold))


def test_enrolling_into_an_existing_group_or_removing_replays(rng):
    bank = ReferenceBank(4, density_cap=1.5)
    for i in range(4):
        bank.enroll(rng.normal(size=(3, 4)), group=f"g{i}")
    bank.enroll(rng.normal(size=(2, 4)), group="g1")  # an existing group: order changes
    assert bank.calibration_.forward_stale
    fresh = calibrate.Calibration()
    fresh.update(bank.references_)
    np.testing.assert_array_equal(bank.forward_scores_, fresh.forward)
    bank.remove(bank.ids_[:3])
    assert bank.calibration_.forward_stale
    fresh.forward_stale = True
    fresh.update(bank.references_)
    np.testing.assert_array_equal(bank.forward_scores_, fresh.forward)


def test_a_loaded_bank_reads_its_calibration_without_recomputing(rng, tmp_path, monkeypatch):
    """Issue 21: a restart, ``bank summary`` and ``status`` read the persisted scores."""
    from edgeasd.scoring import forward
    from edgeasd.scoring.store import load_bank, save_bank

    bank = ReferenceBank(4, density_cap=1.5)
    for i in range(6):
        bank.enroll(rng.normal(size=(3, 4)), domain="source", group=f"g{i}")
    want = bank.threshold_
    save_bank(bank, tmp_path / "bank")

    def fail(*_a):
        raise AssertionError("recomputed")

    monkeypatch.setattr(forward, "forward_scores", fail)
    monkeypatch.setattr(calibrate, "replay", fail)
    monkeypatch.setattr(calibrate, "loo_scores", fail)
    loaded = load_bank(tmp_path / "bank")
    assert loaded.threshold_ == want
    np.testing.assert_array_equal(loaded.forward_scores_, bank.forward_scores_)
    # and enrolling one more group stays incremental after the load
    loaded.enroll(rng.normal(size=(3, 4)), domain="source", group="g6")
    assert np.isfinite(loaded.forward_scores_[-3:]).all() and np.isfinite(loaded.threshold_)


def test_the_density_cap_cuts_at_a_multiple_of_the_median(rng):
    X = np.vstack([rng.normal(0, 0.05, (12, 4)) + 1.0, rng.normal(size=(3, 4)) - 2.0])
    groups = [i // 3 for i in range(15)]  # the last group is far from all others
    paper, capped = ReferenceBank(4), ReferenceBank(4, density_cap=1.5)
    for bank in (paper, capped):
        bank.enroll(X, group=groups)
    raw = paper.density_
    assert raw[12:].min() > 1.5 * np.median(raw)  # the lone far group: a huge density
    np.testing.assert_array_equal(capped.density_, np.minimum(raw, 1.5 * np.median(raw)))
    # a window beside the lone group is no longer divided by the distance to the others
    q = X[12:13] + 0.01
    assert capped.score(q)[0] > 3 * paper.score(q)[0]


def test_a_condition_still_commissioning_does_not_set_the_threshold(rng):
    bank = ReferenceBank(4, density_cap=1.5)
    centre = rng.normal(size=4)
    for g in range(6):  # a commissioned source condition: 6 groups (3 in the evidence), tight
        bank.enroll(centre + 0.05 * rng.normal(size=(3, 4)), domain="source", group=f"s{g}")
    far = rng.normal(size=4)
    for g in range(3):  # a target condition of 3 groups, spread wide
        bank.enroll(far + 0.8 * rng.normal(size=(3, 4)), domain="target", group=f"t{g}")
    f, dom = bank.forward_scores_, bank.domains_
    assert np.isfinite(f[dom == "target"]).any()  # scored, but still commissioning ...
    evidence = bank.calibration_scores_
    assert np.isnan(evidence[dom == "target"]).all()  # ... so not part of the evidence
    assert bank.threshold_ == pytest.approx(ONE_SESSION_MARGIN * np.nanmax(evidence))
    for g in range(3, calibrate.MIN_CONDITION_GROUPS):  # the target reaches 5 groups
        bank.enroll(far + 0.8 * rng.normal(size=(3, 4)), domain="target", group=f"t{g}")
    assert np.isfinite(bank.calibration_scores_[bank.domains_ == "target"]).any()
