"""``threshold.threshold_report``: the threshold, its rule and the predicted false-alarm rate,
computed as documented on a hand-built bank."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.agent.alerts import threshold_policy
from edgeasd.config import Config
from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import FORWARD_MARGIN

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


def test_auto_rule_report() -> None:
    bank, f = _bank()
    rep = threshold_policy.threshold_report(bank, Config(), hop_seconds=HOP)
    assert rep["rule"] == "auto"
    assert rep["threshold"] == pytest.approx(FORWARD_MARGIN * np.nanmax(f), rel=1e-4)
    assert rep["source"].startswith("bank of 12: ")
    # at the largest forward score times the margin, none is above: 1 / (n + 1), n = 6
    assert rep["predicted_false_alarm_rate"] == pytest.approx(1 / 7)
    assert rep["predicted_false_alarms_per_day"] == pytest.approx(86400 / HOP / 7)
    assert (rep["threshold"], rep["source"]) == threshold_policy.threshold_for(bank, Config())


def test_fixed_threshold_prediction_counts_scaled_forward_scores_above_it() -> None:
    bank, f = _bank()
    finite = np.sort(f[np.isfinite(f)])
    value = float(FORWARD_MARGIN * (finite[3] + finite[4]) / 2)  # 2 of 6 scaled scores above
    cfg = Config().replace(threshold={"rule": "fixed", "value": value})
    rep = threshold_policy.threshold_report(bank, cfg, hop_seconds=HOP)
    assert rep["threshold"] == value and rep["rule"] == "fixed"
    assert rep["predicted_false_alarm_rate"] == pytest.approx((1 + 2) / (6 + 1))
    assert rep["predicted_false_alarms_per_day"] == pytest.approx(3 / 7 * 86400 / HOP)


def test_small_conditions_are_warned_with_what_to_enroll() -> None:
    bank, _ = _bank()
    warning = threshold_policy.threshold_report(bank, Config(), hop_seconds=HOP)["warning"]
    # target: 1 group, 2 windows x 10 s = 0.3 min; source: 5 groups, 1.7 min
    assert "1 recording group (0.3 min) of condition 'target'" in warning
    more = threshold_policy.MIN_CONDITION_MINUTES - 2 * HOP / 60
    assert f"enroll at least {more:.0f} more minutes, ideally from a different hour" in warning
    assert "condition 'source'" in warning


def test_uncalibrated_and_empty_banks() -> None:
    empty = threshold_policy.threshold_report(ReferenceBank(8), Config(), hop_seconds=HOP)
    assert empty["threshold"] is None and empty["predicted_false_alarm_rate"] is None
    assert "empty" in empty["warning"]
    one = ReferenceBank(8)
    one.enroll(np.random.default_rng(0).normal(size=(3, 8)), group="a")
    rep = threshold_policy.threshold_report(one, Config(), hop_seconds=HOP)
    assert rep["threshold"] is None and rep["predicted_false_alarms_per_day"] is None
    assert "no threshold yet" in rep["warning"] and "1 recording group" in rep["warning"]
    with pytest.raises(InputError):
        threshold_policy.threshold_report(one, Config(), hop_seconds=0.0)
