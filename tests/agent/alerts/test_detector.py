"""The k-of-n detector against a plain reference implementation."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.agent.alerts.detector import Detector, iso_time, make_event
from edgeasd.agent.alerts.no_signal import SignalWatch
from edgeasd.errors import InputError


def reference(scores, threshold, k, n):
    """Alert/recovered indices by brute force: recount the last n scored windows each time."""
    history, alerting, events = [], False, []
    for i, s in enumerate(scores):
        if s is None:
            continue
        history.append(s > threshold)
        count = sum(history[-n:])
        if not alerting and count >= k:
            alerting = True
            events.append(("alert", i, count))
        elif alerting and count < k:
            alerting = False
            events.append(("recovered", i, count))
    return events


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(0, 10, allow_nan=False)), max_size=60),
    st.integers(1, 6),
    st.integers(0, 5),
    st.floats(0, 10),
)
def test_matches_reference(scores, k, extra, threshold):
    n = k + extra
    det = Detector(threshold, k=k, n=n, threshold_source="test")
    got = []
    for i, s in enumerate(scores):
        for e in det.update(s, 1000.0 + i, i):
            got.append((e.event, e.window_index, e.exceeding))
            assert e.threshold == threshold and e.threshold_source == "test"
            assert (e.k, e.n) == (k, n)
    assert got == reference(scores, threshold, k, n)
    assert det.windows == sum(s is not None for s in scores)
    assert det.alerts == sum(1 for g in got if g[0] == "alert")


def test_debounce_and_recovery_fields():
    det = Detector(2.0, k=2, n=3, threshold_source="bank auto")
    scores = [1.0, 3.0, 1.0, 4.0, 5.0, 1.0, 1.0, 1.0]
    events = {i: det.update(s, 100.0 + 10 * i, i) for i, s in enumerate(scores)}
    alert = events[3][0]
    assert alert.event == "alert" and alert.score == 4.0 and alert.exceeding == 2
    assert det.state()["alerting"] is False
    rec = events[6][0]  # windows 4, 5, 6: one exceedance left
    assert rec.event == "recovered" and rec.started == 130.0 and rec.max_score == 5.0
    d = rec.to_dict()
    assert d["event"] == "recovered" and d["duration_seconds"] == 30.0
    assert datetime.fromisoformat(d["time"]).timestamp() == pytest.approx(160.0)
    assert datetime.fromisoformat(d["started"]).timestamp() == pytest.approx(130.0)
    assert sum(len(v) for v in events.values()) == 2


def test_quality_skipped_windows_do_not_count_as_normal():
    det = Detector(1.0, k=1, n=1)
    assert [e.event for e in det.update(2.0, 0.0, 0)] == ["alert"]
    for i in range(1, 5):  # a dead microphone during the alert: no recovery
        assert det.update(None, float(i), i) == []
    assert det.alerting
    assert [e.event for e in det.update(0.5, 5.0, 5)] == ["recovered"]


def test_equal_to_threshold_does_not_exceed():
    det = Detector(2.0)
    assert det.update(2.0, 0.0, 0) == []
    assert det.update(np.float32(2.0001), 1.0, 1)[0].event == "alert"


def test_set_threshold_and_reset():
    det = Detector(1.0, k=1, n=2)
    det.update(2.0, 0.0, 0)
    det.set_threshold(5.0, "fixed")
    assert det.state()["threshold"] == 5.0 and det.state()["threshold_source"] == "fixed"
    events = det.update(2.0, 1.0, 1)  # window 0 still counts as exceeding (old threshold)
    assert events == [] and det.alerting
    (rec,) = det.update(2.0, 2.0, 2)
    assert rec.event == "recovered" and rec.threshold == 5.0
    det.reset()
    assert det.exceeding == 0 and not det.alerting


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": float("nan")}, "finite"),
        ({"threshold": "2"}, "number"),
        ({"threshold": 1.0, "k": 3, "n": 2}, "must not exceed"),
        ({"threshold": 1.0, "k": 0}, "positive"),
        ({"threshold": 1.0, "n": True}, "positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        Detector(**kwargs)


def test_bad_scores():
    det = Detector(1.0)
    with pytest.raises(InputError, match="NaN"):
        det.update(math.nan, 0.0, 7)
    with pytest.raises(InputError, match="number"):
        det.update("high", 0.0, 7)
    assert det.windows == 0


def test_make_event_and_iso_time():
    e = make_event("window", 1700000000.25, score=1.5, nearest=None, domain="target")
    assert list(e)[:2] == ["time", "event"] and "nearest" not in e
    assert datetime.fromisoformat(e["time"]).timestamp() == 1700000000.25
    assert datetime.fromisoformat(iso_time(0.0)).utcoffset() is not None


def test_reminders_repeat_while_an_episode_lasts_with_its_peak_score():
    det = Detector(1.0, k=1, n=1, reminder_seconds=30.0)
    scores = [0.5, 2.0, 5.0, 3.0, 2.5, 2.0, 2.0, 0.1]  # one window every 10 s
    out = [e for t, s in enumerate(scores) for e in det.update(s, 10.0 * t, t)]
    # alert at 10 s; a reminder 30 s later (40 s); the next would be at 70 s: recovered then
    assert [(e.event, e.window_index) for e in out] == [
        ("alert", 1),
        ("reminder", 4),
        ("recovered", 7),
    ]
    rem = [e for e in out if e.event == "reminder"]
    assert len(rem) == 1 and rem[0].max_score == 5.0 and rem[0].started == 10.0
    record = rem[0].to_dict()
    assert record["kind"] == "anomaly" and record["duration_seconds"] == 30.0
    assert Detector(1.0).reminder_seconds == 0.0  # the library default: no reminders
    quiet = Detector(1.0)
    assert [e.event for t in range(100) for e in quiet.update(5.0, 10.0 * t, t)] == ["alert"]


def test_set_threshold_and_debounce_keep_an_ongoing_episode():
    det = Detector(1.0, k=2, n=3)
    assert [e.event for t in range(3) for e in det.update(5.0, t, t)] == ["alert"]
    det.set_threshold(2.0, "after an enrollment")
    det.set_debounce(2, 4, reminder_seconds=0.0)  # a reload
    assert det.alerting and det.exceeding == 3  # history kept
    assert [e.event for t in range(3, 6) for e in det.update(4.0, t, t)] == []  # no 2nd alert
    events = [e for t in range(6, 10) for e in det.update(0.0, t, t)]
    assert [e.event for e in events] == ["recovered"] and events[0].started == 1  # 2 of 3
    with pytest.raises(InputError, match="must not exceed"):
        det.set_debounce(3, 2)


def test_alert_carries_the_window_flags():
    det = Detector(1.0)
    (alert,) = det.update(4.0, 0.0, 0, {"clipped": True, "clip_fraction": 0.03})
    record = alert.to_dict()
    assert record["clipped"] is True and record["clip_fraction"] == 0.03
    assert "flags" not in record and record["kind"] == "anomaly"


def test_events_state_the_threshold_rule_and_predicted_rate_after_a_recalibration():
    facts = {"threshold_rule": "auto", "predicted_false_alarm_rate": 0.02}
    det = Detector(1.0, threshold_facts=facts)
    (alert,) = det.update(4.0, 0.0, 0)
    assert alert.to_dict()["predicted_false_alarm_rate"] == 0.02
    det.set_threshold(2.0, "bank of 30: auto", {**facts, "predicted_false_alarm_rate": 0.01})
    (recovered,) = det.update(1.5, 10.0, 1)
    record = recovered.to_dict()
    assert record["event"] == "recovered" and record["threshold"] == 2.0
    assert record["predicted_false_alarm_rate"] == 0.01 and record["threshold_rule"] == "auto"
    assert "threshold_facts" not in record


def test_signal_watch_alerts_once_on_a_long_dead_input_and_recovers():
    watch = SignalWatch(alert_seconds=3.0, window_seconds=1.0)
    signal = [True, False, False, False, False, False, True, True, False, True]
    out = [(t, e) for t, ok in enumerate(signal) for e in watch.update(ok, t, t, "dead")]
    assert [(t, e["event"], e["kind"]) for t, e in out] == [
        (3, "alert", "no_signal"),  # windows 1-3 cover 3 s
        (6, "recovered", "no_signal"),
    ]
    alert, recovered = out[0][1], out[1][1]
    assert alert["status"] == "dead" and alert["no_signal_seconds"] == 3.0
    assert recovered["duration_seconds"] == 5.0 and recovered["started"] == iso_time(1.0)
    # a short dropout (window 8) is no incident; 0 disables the alert
    off = SignalWatch(alert_seconds=0.0, window_seconds=1.0)
    assert [e for t in range(50) for e in off.update(False, t, t, "dead")] == []
