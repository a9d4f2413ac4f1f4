"""The decision module: states in order, a NaN threshold never normal, the learning rule,
the bank state under the configured rule, and the operating-point labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeasd.agent.alerts import decision
from edgeasd.audio.quality import assess
from edgeasd.config import Config
from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank

SR = 16000


def _state(threshold: float = 2.0, learning: str | None = None) -> decision.BankState:
    return decision.BankState(20, 3, learning, 0, threshold, "test rule")


def _sine(amplitude: float) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf])
def test_a_nan_or_missing_threshold_is_uncalibrated_never_normal(threshold) -> None:
    for score in (0.0, 1e9, None):
        d = decision.decide(score, _state(threshold))
        assert d.state == "uncalibrated" and d.threshold is None
        assert d.reason == "test rule"
    labels = decision.label_scores(np.array([0.0, 5.0]), threshold)
    assert labels.tolist() == ["uncalibrated", "uncalibrated"]


def test_verdicts_strictly_above_the_threshold() -> None:
    assert decision.decide(2.5, _state()).state == "anomalous"
    assert decision.decide(2.0, _state()).state == "normal"  # equal: not above
    assert decision.decide(0.1, _state()).fields() == {"decision": "normal", "threshold": 2.0}
    assert decision.label_scores(np.array([2.0, 2.5]), 2.0).tolist() == ["normal", "anomalous"]
    with pytest.raises(InputError):
        decision.decide(None, _state())  # a verdict needs a score
    with pytest.raises(InputError):
        decision.decide(math.nan, _state())


def test_no_signal_comes_first_and_clipped_windows_get_a_verdict_with_the_flag() -> None:
    dead = assess(np.zeros(SR, np.float32))
    d = decision.decide(None, _state(learning="enroll more"), dead)
    assert d.fields() == {"decision": "no-signal", "reason": "dead"}
    clipped = assess(np.clip(_sine(3.0), -1, 1))
    d = decision.decide(9.0, _state(), clipped)
    fields = d.fields()
    assert fields["decision"] == "anomalous" and fields["clipped"] is True
    assert fields["clip_fraction"] == pytest.approx(clipped.clip_fraction, abs=1e-6)
    assert fields["clip_fraction"] > 0.1
    assert d.flags == {"clipped": True, "clip_fraction": fields["clip_fraction"]}
    assert decision.decide(0.1, _state(), assess(_sine(0.1))).flags is None


def test_learning_comes_before_any_verdict() -> None:
    d = decision.decide(1e9, _state(learning="3 more normal windows needed"))
    assert d.state == "learning" and d.score == 1e9 and "threshold" not in d.fields()


def test_learning_rule() -> None:
    kw = {"min_references": 10, "exclude_same_group": True, "group_seconds": 60.0}
    assert decision.learning_reason(4, 2, hop_seconds=10.0, **kw)[0] == 6
    needed, why = decision.learning_reason(12, 1, hop_seconds=10.0, **kw)
    assert needed == 0 and "enroll a second recording of at least 60 seconds" in why
    assert "--next 6" in why and why.startswith("one recording enrolled")
    # a minute, or a whole group where groups are shorter
    why = decision.learning_reason(12, 1, hop_seconds=10.0, **{**kw, "group_seconds": 30.0})[1]
    assert "at least 30 seconds" in why and "--next 3" in why
    assert decision.learning_reason(12, 2, hop_seconds=10.0, **kw) == (0, None)
    kw["exclude_same_group"] = False
    assert decision.learning_reason(12, 1, hop_seconds=None, **kw) == (0, None)


def test_bank_state_uses_the_configured_rule_not_the_stored_one() -> None:
    rng = np.random.default_rng(0)
    bank = ReferenceBank(8)
    base = rng.normal(size=8)
    bank.enroll(base + 0.1 * rng.normal(size=(12, 8)), group=[f"g{i // 3}" for i in range(12)])
    bank.calibrate(rule="fixed", value=123.0)  # a rule stored with the bank earlier
    config = Config().replace(scoring={"min_references": 4})
    state = decision.bank_state(bank, config, hop_seconds=10.0)
    assert state.state == "ready" and state.threshold != 123.0
    assert state.threshold_source.startswith("bank of 12")
    one_group = Config().replace(scoring={"min_references": 4}, threshold={"rule": "quantile"})
    lone = ReferenceBank(8)
    lone.enroll(base + 0.1 * rng.normal(size=(6, 8)), group="one")
    state = decision.bank_state(lone, one_group, hop_seconds=10.0)
    assert state.state == "learning" and state.groups == 1
    assert decision.decide(1e9, state).state == "learning"  # what `score` prints too
    loose = Config().replace(scoring={"min_references": 4, "exclude_same_group": False})
    loose = loose.replace(threshold={"rule": "quantile"})
    state = decision.bank_state(lone, loose, hop_seconds=10.0)  # config differs from the bank
    assert any("exclude_same_group" in w and "bank rebuild" in w for w in state.warnings)
    flat = ReferenceBank(8, exclude_same_group=False, density_cap=1.5, density_rule="condition")
    flat.enroll(base + 0.1 * rng.normal(size=(6, 8)), group="one")
    state = decision.bank_state(flat, loose, hop_seconds=10.0)
    assert not state.calibrated and state.state == "uncalibrated"  # rule quantile, 1 group
    assert decision.decide(1e9, state).state == "uncalibrated"  # never "normal"
    assert state.warnings == ()


def test_bank_state_warns_when_the_threshold_is_out_of_reach() -> None:
    bank = ReferenceBank(4, norm="none")
    bank.enroll(np.eye(4) + 0.01)
    config = Config().replace(
        scoring={"norm": "none", "min_references": 2},
        threshold={"rule": "fixed", "value": 1.5},
    )
    state = decision.bank_state(bank, config)
    assert state.threshold == 1.5 and bank.score_bound_ == 1.0
    assert any("can never be exceeded" in w for w in state.warnings)
    # "ready" and "cannot alert" never together (issue 17): its own state, no verdict
    assert state.state == "unreachable" and state.as_dict()["state"] == "unreachable"
    assert decision.decide(0.5, state).state == "uncalibrated"


def test_summaries() -> None:
    assert decision.summarize(["normal", "anomalous", "no-signal"]) == "anomalous"
    assert decision.summarize(["normal", "no-signal"]) == "normal"
    assert decision.summarize(["no-signal"]) == "no-signal"
    assert decision.summarize(["learning", "normal"]) == "learning"
