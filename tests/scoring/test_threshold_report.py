"""``threshold_policy.threshold_report``: the threshold, its rule, the forecast and the
commissioning per condition, computed as documented on a hand-built bank."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.agent.alerts import threshold_policy
from edgeasd.config import Config
from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank, forecast
from edgeasd.scoring.calibrate import ONE_SESSION_MARGIN

from .test_forward import reference_forward

HOP = 10.0


def _bank() -> tuple[ReferenceBank, np.ndarray]:
    """Five source recordings of 2 windows, one target recording of 2 windows."""
    rng = np.random.default_rng(7)
    centre = rng.normal(size=8)
    X = centre + rng.normal(0, 0.2, (12, 8))
    groups = ["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4", "s5", "s5", "t1", "t1"]
    domains = ["source"] * 10 + ["target"] * 2
    X[10:] += rng.normal(0, 1.0, 8)  # the target condition sounds different
    bank = ReferenceBank(8)
    for g in ("s1", "s2", "s3", "s4", "s5", "t1"):
        rows = [i for i, v in enumerate(groups) if v == g]
        bank.enroll(X[rows], domain=domains[rows[0]], group=g)
    want, _ = reference_forward(
        bank.embeddings_.astype(np.float64),
        groups,
        domains,
        "cosine",
        "knn",
        1,
        None,
        "ratio",
        True,
    )
    return bank, want


def test_forward_scores_of_the_hand_built_bank() -> None:
    bank, want = _bank()
    assert np.isnan(want[[0, 1, 2, 3, 10, 11]]).all() and np.isfinite(want[4:10]).all()
    np.testing.assert_allclose(bank.forward_scores_[4:10], want[4:10], rtol=1e-4)


def _starts(exceed: list[bool], k: int, n: int) -> int:
    """Episode starts of a k-of-n debounce, by a plain loop over the windows."""
    on, starts, last = False, 0, []
    for e in exceed:
        last = [*last, e][-n:]
        now = sum(last) >= k
        starts += now and not on
        on = now
    return starts


def test_auto_rule_report() -> None:
    bank, f = _bank()
    rep = threshold_policy.threshold_report(bank, Config(), hop_seconds=HOP)
    assert rep["rule"] == "auto" and rep["state"] == "ready"
    # the evidence: s4, s5 (s3, the first scored group, leaves it once later ones are
    # scored); from fewer than 3 groups, so the LOGO maximum counts too
    np.testing.assert_allclose(bank.calibration_scores_[6:10], f[6:10], rtol=1e-4)
    top = max(np.nanmax(f[6:10]), np.nanmax(bank.loo_scores_))
    # one session: the one-session margin
    assert rep["threshold"] == pytest.approx(ONE_SESSION_MARGIN * top, rel=1e-4)
    assert rep["source"].startswith("bank of 12: ")
    # 4 evidence windows, none above at the margin: the bound is 1 / 5 of 8,640 windows
    # a day, far from useful: no number, the minutes that would make it known
    fc = rep["forecast"]
    assert not fc["known"] and fc["per_day"] is None
    assert rep["predicted_false_alarms_per_day"] is None
    assert fc["bound_per_day"] == pytest.approx(86400 / HOP / 5)
    windows = 86400 / HOP / forecast.USEFUL_PER_DAY - 1  # (1 + 0) / (W + 1) per window
    assert fc["minutes_needed"] == pytest.approx((windows - 4) * HOP / 60)
    assert "not known yet" in fc["words"] and "none of them would have alerted" in fc["words"]
    # of the condition its evidence comes from: the target (1 group) does not count yet
    assert (
        f"{fc['minutes_needed']:,.0f} more minutes of normal audio of condition 'source' ("
        in (fc["words"])
    )
    assert (rep["threshold"], rep["source"]) == threshold_policy.threshold_for(bank, Config())


def test_the_forecast_is_a_number_once_the_bound_is_useful() -> None:
    bank, _ = _bank()
    hop = 3 * 3600.0  # 8 windows a day: 4 evidence windows make a bound of 8/5 a day ...
    rep = threshold_policy.threshold_report(bank, Config(), hop_seconds=hop)
    assert not rep["forecast"]["known"]
    bank.enroll(bank.embeddings_[4:6] + 1e-3, domain="source", group="s6")
    bank.enroll(bank.embeddings_[6:8] + 1e-3, domain="source", group="s7")  # ... 8: 8/9
    rep = threshold_policy.threshold_report(bank, Config(), hop_seconds=hop)
    fc = rep["forecast"]
    assert fc["known"] and fc["per_day"] == 0.0 and fc["bound_per_day"] == pytest.approx(8 / 9)
    # the promise is the bound: the estimate is 0 at the `auto` threshold by construction
    assert rep["predicted_false_alarms_per_day"] == pytest.approx(8 / 9)
    assert rep["predicted_false_alarm_rate"] == pytest.approx(1 / 9)
    assert fc["words"].startswith("false alerts a day: at most 0.89, while the machine sounds")
    assert "(none of them would have alerted)" in fc["words"]
    assert "about" not in fc["words"]


def test_the_forecast_counts_evidence_beyond_the_groups_the_threshold_follows() -> None:
    """The minutes the forecast asks for can be enrolled: past the latest
    ``MAX_FORWARD_GROUPS`` scored groups (what ``auto`` rests on) every scored window still
    counts, so each recording enrolled brings a known forecast closer (issue 17)."""
    from edgeasd.scoring.calibrate import MAX_FORWARD_GROUPS

    rng = np.random.default_rng(3)
    centre = rng.normal(size=8)
    bank = ReferenceBank(8)
    hop = 600.0  # 144 windows a day: one window per group keeps the bank small
    needed = []
    for g in range(MAX_FORWARD_GROUPS + 22):
        bank.enroll(centre + rng.normal(0, 0.2, (1, 8)), domain="source", group=f"g{g}")
        if g + 1 in (MAX_FORWARD_GROUPS + 12, MAX_FORWARD_GROUPS + 22):
            fc = threshold_policy.threshold_report(bank, Config(), hop_seconds=hop)["forecast"]
            needed.append((fc["scored_minutes"], fc["minutes_needed"], fc["bound_per_day"]))
    # the paper's densities: the first two groups are not scored, and the first scored one
    # leaves the evidence once later ones are: N - 3 windows (at most 100 before)
    (w1, need1, bound1), (w2, need2, bound2) = needed
    assert w1 == pytest.approx((MAX_FORWARD_GROUPS + 9) * hop / 60)
    assert w2 == pytest.approx((MAX_FORWARD_GROUPS + 19) * hop / 60)
    assert bound2 < bound1 and need2 < need1


@pytest.mark.parametrize(("k", "n"), [(1, 1), (2, 2), (1, 3)])
def test_fixed_threshold_forecast_counts_debounced_episodes(k, n) -> None:
    bank, f = _bank()
    finite = np.sort(f[np.isfinite(f)])
    # one session: the evidence is scaled by the one-session margin
    value = float(ONE_SESSION_MARGIN * (finite[2] + finite[3]) / 2)  # some scaled scores above
    cfg = Config().replace(threshold={"rule": "fixed", "value": value}, detector={"k": k, "n": n})
    hop = 6 * 3600.0  # 4 windows a day
    rep = threshold_policy.threshold_report(bank, cfg, hop_seconds=hop)
    assert rep["threshold"] == value and rep["rule"] == "fixed"
    starts = sum(
        _starts([bool(ONE_SESSION_MARGIN * v > value) for v in f[rows]], k, n)
        for rows in ([6, 7], [8, 9])  # the evidence: groups s4, s5, in time order
    )
    assert rep["forecast"]["bound_per_day"] == pytest.approx((1 + starts) / 5 * 4)


@settings(max_examples=200, deadline=None)
@given(
    exceed=st.lists(st.booleans(), max_size=40),
    k=st.integers(1, 4),
    extra=st.integers(0, 3),
)
def test_debounced_starts_match_a_plain_loop(exceed, k, extra) -> None:
    n = k + extra
    assert forecast.debounced_starts(np.array(exceed, bool), k, n) == _starts(exceed, k, n)


def test_commissioning_per_condition_in_plain_words() -> None:
    bank, _ = _bank()
    rep = threshold_policy.threshold_report(bank, Config(), hop_seconds=HOP)
    by = {c["condition"]: c for c in rep["commissioning"]}
    # target: 1 group, 2 windows x 10 s = 0.3 min, nothing scored; source: 5 groups, 1.7 min
    t, s = by["target"], by["source"]
    assert t["provisional"] and t["groups"] == 1 and t["minutes"] == pytest.approx(2 * HOP / 60)
    assert t["minutes_needed"] == pytest.approx(forecast.MIN_CONDITION_MINUTES - 2 * HOP / 60)
    assert "enroll at least 5 more minutes" in t["words"] and "provisional" in t["words"]
    assert s["provisional"] and s["scored_minutes"] == pytest.approx(6 * HOP / 60)
    assert rep["provisional"] == ["source", "target"]
    assert t["words"] in rep["warning"]
    # one session: everything enrolled within the hour
    assert t["sessions"] == s["sessions"] == 1
    lines = threshold_policy.report_lines(rep)
    assert lines[0] == rep["forecast"]["words"] and len(lines) == 3


def test_a_commissioned_condition_and_sessions() -> None:
    rng = np.random.default_rng(1)
    bank = ReferenceBank(8)
    for g in range(6):
        bank.enroll(rng.normal(size=(6, 8)), domain="source", group=f"g{g}")
    bank.references_.added[18:36] += 2 * forecast.SESSION_GAP_SECONDS  # a later session
    (status,) = forecast.commissioning(bank, HOP)
    assert not status.provisional and status.minutes == pytest.approx(6.0)
    assert status.sessions == 2 and status.minutes_needed == 0
    assert status.words.startswith("condition 'source': commissioned (6.0 min enrolled")


def test_an_unreachable_threshold_is_its_own_state_with_a_fix() -> None:
    from edgeasd.agent.alerts import decision

    bank, _ = _bank()
    cfg = Config().replace(threshold={"rule": "fixed", "value": 1e6})
    state = decision.bank_state(bank, cfg, HOP)
    assert state.state == "unreachable" and state.state != "ready"
    assert (
        "can never be exceeded" in state.warnings[0] and "enroll normal audio" in state.warnings[0]
    )
    verdict = decision.decide(1e5, state)
    assert verdict.state == "uncalibrated" and "can never be exceeded" in verdict.reason


def test_uncalibrated_and_empty_banks() -> None:
    empty = threshold_policy.threshold_report(ReferenceBank(8), Config(), hop_seconds=HOP)
    assert empty["threshold"] is None and empty["predicted_false_alarm_rate"] is None
    assert "empty" in empty["warning"] and empty["state"] == "uncalibrated"
    one = ReferenceBank(8)
    one.enroll(np.random.default_rng(0).normal(size=(3, 8)), group="a")
    rep = threshold_policy.threshold_report(one, Config(), hop_seconds=HOP)
    assert rep["threshold"] is None and rep["predicted_false_alarms_per_day"] is None
    assert "no threshold yet" in rep["warning"] and "1 recording group" in rep["warning"]
    assert rep["forecast"]["words"] == "false alerts a day: no threshold yet"
    with pytest.raises(InputError):
        threshold_policy.threshold_report(one, Config(), hop_seconds=0.0)
