"""``threshold`` section → ``ReferenceBank.calibrate(rule, q, value)``, rule by rule."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.agent.alerts import threshold_policy
from edgeasd.config import Config
from edgeasd.errors import ConfigError
from edgeasd.evaluation.synthetic import domain_shift_scenario
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import ONE_SESSION_MARGIN


def _bank(norm: str = "ratio") -> ReferenceBank:
    data = domain_shift_scenario(seed=1, dim=16, n_source=120, n_target=10)
    bank = ReferenceBank(16, norm=norm)
    # the target condition is tagged, as `edgeasd enroll --domain target` does: untagged, its
    # first recordings would count as normal variation for forward chaining
    bank.enroll(
        data["train"].astype(np.float32),
        domain=list(data["train_domains"]),
        group=list(data["train_groups"]),
    )
    return bank


def _cfg(norm: str = "ratio", **threshold) -> Config:
    return Config().replace(scoring={"norm": norm}, threshold=threshold)


def _expected(rule: str, q: float, value: float | None, norm: str = "ratio") -> float:
    fresh = _bank(norm)
    return fresh.calibrate(rule=rule, q=q, value=value)


@pytest.mark.parametrize("q", [0.5, 0.95])
@pytest.mark.parametrize("rule", ["quantile", "gamma"])
def test_data_driven_rules_use_threshold_q(rule, q) -> None:
    bank = _bank()
    t, source = threshold_policy.threshold_for(bank, _cfg(rule=rule, q=q))
    assert t == pytest.approx(_expected(rule, q, None)) and np.isfinite(t)
    assert source.startswith("bank of 130:")
    other, _ = threshold_policy.threshold_for(bank, _cfg(rule=rule, q=0.7))
    assert other != t  # q is read from threshold.q, not from threshold.value


def test_fixed_rule_with_and_without_value() -> None:
    bank = _bank()
    assert threshold_policy.threshold_for(bank, _cfg(rule="fixed", value=5.0))[0] == 5.0
    # value null under ratio: the bank's default constant 3.0 (this crashed before)
    t, source = threshold_policy.threshold_for(bank, _cfg(rule="fixed"))
    assert t == 3.0 and source.startswith("config: threshold.rule fixed")
    # a fixed threshold needs no references
    empty = ReferenceBank(16)
    assert threshold_policy.threshold_for(empty, _cfg(rule="fixed", value=2.5))[0] == 2.5
    assert threshold_policy.threshold_for(empty, _cfg(rule="fixed"))[0] == 3.0
    with pytest.raises(ConfigError, match=r"threshold\.value"):
        _cfg("difference", rule="fixed")
    assert threshold_policy.threshold_for(
        _bank("difference"), _cfg("difference", rule="fixed", value=0.1)
    )[0] == pytest.approx(0.1)


def test_auto_rule_forward_margin_and_floor() -> None:
    # auto changed (issue 9): the margin x the largest forward-chaining score, no
    # floor of 3 unless threshold.value is set; q is not used by it
    bank = _bank()
    t, source = threshold_policy.threshold_for(bank, _cfg(rule="auto", q=0.95))
    assert t == pytest.approx(_expected("auto", 0.95, None)) and np.isfinite(t)
    # one session (enrolled at once): the one-session margin (issue 17)
    assert t == pytest.approx(ONE_SESSION_MARGIN * np.nanmax(bank.forward_scores_))
    assert "forward-chaining" in source
    assert threshold_policy.threshold_for(bank, _cfg(rule="auto", q=0.5))[0] == pytest.approx(t)
    high, _ = threshold_policy.threshold_for(bank, _cfg(rule="auto", value=1e3))
    assert high == 1e3  # the configured floor
    # a floor dropped from the configuration does not survive in the (saved) bank
    back, _ = threshold_policy.threshold_for(bank, _cfg(rule="auto"))
    assert back == pytest.approx(t)
    assert np.isnan(threshold_policy.threshold_for(ReferenceBank(16), _cfg(rule="auto"))[0])


def test_default_config_matches_the_bank_default() -> None:
    bank = _bank()
    t, source = threshold_policy.threshold_for(bank, Config())
    assert t == pytest.approx(_bank().threshold_)  # the bank's own default (auto, no floor)
    assert source == f"bank of 130: {bank.threshold_rule_}"
