"""The temporal hold-out protocol on simulated recordings with drift: the default threshold's
false-alarm rate on *later* normal recordings is within the claim (README, "One threshold")."""

from __future__ import annotations

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
        # condition misses the claim under the default density rule `condition` (= the paper's
        # densities for an established condition): the third session's normals score 2.6x the
        # largest calibration score, 4 of 24 windows above 2x it (17 %; the earlier `cap` rule:
        # 0 %). Known, measured (BENCHMARKS.md operating_point), issue 17 open: strict, so a
        # fix shows up here.
        pytest.param(
            "gearbox",
            marks=pytest.mark.xfail(
                strict=True, reason="issue 17: gearbox seed 3 source 17 % false alarms"
            ),
        ),
    ],
)
def test_default_threshold_holds_on_later_recordings_full_protocol(machine) -> None:
    """The benchmark's layout on a seed it was not chosen on (3), with every fault kind."""
    data = simulate(machine, 3, None)
    out = _check_claim(data, ("source", "target"), machine)
    for r in out["result"].values():
        assert all(0.0 <= f["rate"] <= 1.0 for f in r["faults"].values())


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
