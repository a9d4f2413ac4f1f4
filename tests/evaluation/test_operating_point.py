"""The temporal hold-out protocol on simulated recordings with drift: the default threshold's
false-alarm rate on *later* normal recordings is within the claim (README, "One threshold")."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from edgeasd.agent.alerts import threshold_policy
from edgeasd.config import Config
from edgeasd.evaluation.operating_point import (
    build_bank,
    evaluate,
    operator_loop,
    plan,
    recording_times,
    simulate,
    with_target_recordings,
)

GOAL_FA = 0.05
BAND = (1.1, 3.0)


@lru_cache(maxsize=4)
def _seed3(machine: str) -> dict:
    """The benchmark's layout on seed 3 (not a choice seed), rendered once per machine."""
    return simulate(machine, 3, None)


def _shipped_threshold(bank) -> float:
    return threshold_policy.threshold_report(bank, Config(), hop_seconds=10.0)["threshold"]


def _check_claim(data: dict, conditions: tuple[str, ...], machine: str, **layout) -> dict:
    """Issue 17: at most 5 % false alarms on later normal windows, or alerts provisional."""
    bank = build_bank(data, None, recording_times(machine, **layout))
    rep = threshold_policy.threshold_report(bank, Config(), hop_seconds=10.0)
    assert rep["rule"] == "auto" and rep["threshold"] is not None
    res = evaluate(data, bank, rep["threshold"])
    for cond in conditions:
        r = res[cond]
        assert r["normal"] >= 6
        assert r["fa_rate"] <= GOAL_FA or cond in rep["provisional"], (cond, r, rep)
    return {"bank": bank, "report": rep, "result": res}


def test_plan_splits_each_condition_into_earlier_and_later_recordings() -> None:
    recs = plan("fan", per_session=3, seconds=30.0, faults=True)
    for cond in ("source", "target"):
        normal = [r for r in recs if r.condition == cond and r.kind == "normal"]
        earlier = [r.recording.time_s for r in normal if r.phase == "earlier"]
        later = [r.recording.time_s for r in normal if r.phase == "later"]
        assert earlier and later and max(earlier) < min(later)
    faults = {r.kind for r in recs if r.kind != "normal"}
    assert faults == {"imbalance", "blade_damage", "bearing", "looseness"}
    assert all(r.phase == "later" for r in recs if r.kind != "normal")


def test_default_threshold_holds_on_later_recordings_small_set() -> None:
    """CI size: one fan, 3 recordings per session, no faults (6 min of audio)."""
    layout = {"per_session": 3, "seconds": 20.0, "faults": False}
    data = simulate("fan", 11, None, **layout)
    out = _check_claim(data, ("source", "target"), "fan", **layout)
    # enrolled at the recordings' times: the second session is scored against the first
    assert np.isfinite(out["bank"].session_forward_scores_).any()
    # the target condition (2 recordings) is too small to calibrate on: the report says so
    assert "condition 'target'" in out["report"]["warning"]
    assert "target" in out["report"]["provisional"]
    assert np.isfinite(out["bank"].forward_scores_).sum() > 0


def test_target_sizes_and_the_operator_loop_small_set() -> None:
    """CI size: the benchmark's target sweep and operator-in-the-loop variant run as claimed."""
    layout = {"per_session": 3, "seconds": 20.0, "faults": False}
    data = simulate("fan", 11, None, **layout)
    one = with_target_recordings(data, 1, later_from=2)
    tn = (one["condition"] == "target") & (one["kind"] == "normal")
    assert set(one["phase"][tn]) == {"earlier", "-", "later"}  # recording 1: left out
    assert np.unique(one["recording"][tn & (one["phase"] == "earlier")]).size == 1

    def rule(bank):
        return threshold_policy.threshold_report(bank, Config(), hop_seconds=10.0)["threshold"]

    before = build_bank(one)
    bank, res, fixes = operator_loop(one, "fan", rule, **layout)
    # each confirmed false alarm is one more reference of its condition; at most one per
    # later session (source: 1, target: 2)
    assert len(bank) == len(before) + fixes and 0 <= fixes <= 3
    for cond, r in res.items():
        assert r["false_alarms"] <= r["normal"] and r["fa_rate"] == r["false_alarms"] / r["normal"]
        assert (r["false_alarms"] > 0) >= (cond in {d for d in bank.domains_[len(before) :]})


@pytest.mark.slow
@pytest.mark.parametrize(
    "machine",
    [
        "fan",
        "pump",
        "valve",
        # the gearbox target, enrolled from 2 recordings, alarms on many later windows: its
        # alerts are provisional (issue 17), which the claim allows. Its commissioned source
        # condition misses the claim: the third session drifted (its normals score 2.6x the
        # largest calibration score), 10 of its 24 windows score above the threshold of 1.25 x
        # that score (42 %; at the margin 2 before the operator loop: 4 of 24, 17 %; the
        # earlier `cap` density rule: 0 %). With the operator in the loop (the test below) one
        # confirmation brings it to 1 of 24. Known, measured (BENCHMARKS.md operating_point
        # and threshold_rules), issue 17 open: strict, so a fix shows up here.
        pytest.param(
            "gearbox",
            marks=pytest.mark.xfail(
                strict=True, reason="issue 17: gearbox seed 3 source 42 % false alarms uncorrected"
            ),
        ),
    ],
)
def test_default_threshold_holds_on_later_recordings_full_protocol(machine) -> None:
    """The benchmark's layout on a seed it was not chosen on (3), with every fault kind."""
    out = _check_claim(_seed3(machine), ("source", "target"), machine)
    for r in out["result"].values():
        assert all(0.0 <= f["rate"] <= 1.0 for f in r["faults"].values())


@pytest.mark.slow
@pytest.mark.parametrize(
    "machine",
    [
        "fan",
        "pump",
        "valve",
        # after two confirmations (one per drifted session) the gearbox keeps 1 false alarm of
        # 24 source windows (4 %), but its threshold ends 1.09x (source) and 1.04x (target)
        # its later normal maximum, just below the band (BENCHMARKS.md threshold_rules)
        pytest.param(
            "gearbox",
            marks=pytest.mark.xfail(
                strict=True, reason="issue 17: gearbox seed 3 threshold 1.09x the later normals"
            ),
        ),
    ],
)
def test_operator_loop_keeps_the_threshold_just_above_later_normals(machine) -> None:
    """Issue 17: with the first false alarm of each later session confirmed normal, at most 5 %
    false alarms on a commissioned condition's later normal windows (the confirmed ones
    counted), and the threshold within 1.1-3x each condition's highest later normal score.

    Fails at the margin 2 of before the operator loop (fan seed 3: the target's threshold
    3.6x its later normal maximum; valve: the source's 3.5x)."""
    data = _seed3(machine)
    bank, res, fixes = operator_loop(data, machine, _shipped_threshold)
    t = _shipped_threshold(bank)
    assert fixes <= 3  # at most one per later session (source: 1, target: 2)
    assert res["source"]["fa_rate"] <= GOAL_FA, res["source"]
    for cond, r in res.items():
        assert BAND[0] <= t / r["max_normal"] <= BAND[1], (cond, t, r["max_normal"])


@pytest.mark.slow
@pytest.mark.parametrize("machine", ["fan", "gearbox"])
def test_one_target_recording_scores_within_3x_of_the_source(machine) -> None:
    """Issue 17: after 1 recording of the target is enrolled, its later normal windows score
    within 3x of the source's (largest against largest). Held-out seed 2, whose fan and
    gearbox overshot under the first version of the `condition` rule (4.20x and 3.39x; now
    2.80x and 2.26x, BENCHMARKS.md lone_group). Normal recordings only (the same renders as
    the benchmark's: each recording's seed is its own)."""
    data = with_target_recordings(simulate(machine, 2, None, faults=False), 1)
    bank = build_bank(data, None, recording_times(machine, faults=False))
    sel = (data["phase"] == "later") & (data["kind"] == "normal")
    s, cond = bank.score(data["emb"][sel]), data["condition"][sel]
    ratio = s[cond == "target"].max() / s[cond == "source"].max()
    assert 1 / 3 <= ratio <= 3, ratio
