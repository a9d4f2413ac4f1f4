"""Fault suite, the wall clock stepping back (issue 20).

Durations were measured on window times, which follow the wall clock: a backward step of D
delayed the next reminder and a dead-microphone alert by D, ``duration_seconds`` went
negative and ``alerts.jsonl`` read out of order. The clocks are injected: the live chain
(capture ring -> reader -> windower) carries a monotonic time beside the wall stamp, and the
detector, the no-signal watch, the event stamps and the uptime use the right one.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.agent.alerts.detector import Detector
from edgeasd.agent.alerts.no_signal import SignalWatch
from edgeasd.agent.alerts.stamps import Stamps
from edgeasd.agent.control.status import StatusBoard
from edgeasd.audio.ring import CaptureRing, SegmentReader
from edgeasd.audio.windower import Windower

RATE = 100  # frames per second: one callback of RATE frames is one second of audio
STEP = -3600.0  # the system clock goes back an hour...
STEP_AT = 12  # ...after this many seconds of audio


def _live_windows(seconds: int, reopen_at: int | None = None):
    """Windows of 1 s from an injected-clock capture chain; the wall steps back at STEP_AT.

    ``reopen_at``: the device is reopened then (a fresh ring and reader, as after a lost
    device), so the wall-clock anchor is taken again, after the step.
    """
    clock = {"wall": 1_000_000.0, "mono": 50.0}

    def chain():
        ring = CaptureRing(
            10 * RATE, 1, RATE, wall=lambda: clock["wall"], monotonic=lambda: clock["mono"]
        )
        return ring, SegmentReader(RATE, RATE, "mix", "fake")

    ring, reader = chain()
    windower = Windower(RATE, 1.0)
    out = []
    for second in range(seconds):
        clock["wall"] += 1.0
        clock["mono"] += 1.0
        if second == STEP_AT:
            clock["wall"] += STEP
        if second == reopen_at:
            ring, reader = chain()
        ring.callback(np.full((RATE, 1), 0.1, np.float32), RATE, None, None)
        for block in reader.convert(ring.read()):
            out += windower.push(block)
    return out


@pytest.mark.parametrize("reopen", [None, STEP_AT], ids=["continuous", "device reopened"])
def test_reminders_and_durations_follow_the_monotonic_clock(reopen) -> None:
    windows = _live_windows(40, reopen_at=reopen)
    stamps = Stamps()
    det = Detector(threshold=1.0, k=1, n=1, reminder_seconds=10.0)
    events = []
    for w in windows:
        events += [
            (w, e) for e in det.update(5.0, stamps.stamp(w.start_time), w.index, clock=w.clock)
        ]
    kinds = [(e.event, w.index) for w, e in events]
    first = windows[0].index
    # an alert, then a reminder every 10 s of audio: not delayed by the hour-long step
    assert kinds[:4] == [
        ("alert", first),
        ("reminder", first + 10),
        ("reminder", first + 20),
        ("reminder", first + 30),
    ], kinds
    records = [e.to_dict() for _, e in events]
    assert [r["duration_seconds"] for r in records[1:4]] == [10.0, 20.0, 30.0]
    times = [r["time"] for r in records]
    assert times == sorted(times)  # alerts.jsonl in order (ISO stamps of one offset)


@pytest.mark.parametrize("reopen", [None, STEP_AT], ids=["continuous", "device reopened"])
def test_a_dead_microphone_alert_is_not_delayed_by_the_step(reopen) -> None:
    windows = _live_windows(30, reopen_at=reopen)
    watch = SignalWatch(alert_seconds=20.0, window_seconds=1.0)
    stamps = Stamps()
    alerts = [
        w.index
        for w in windows
        for e in watch.update(False, stamps.stamp(w.start_time), w.index, "dead", clock=w.clock)
        if e["event"] == "alert"
    ]
    assert alerts == [windows[0].index + 19]  # 20 s of dead windows, whatever the clock did
    w = windows[-1]
    (recovered,) = watch.update(True, stamps.stamp(w.start_time), w.index, "ok", clock=w.clock)
    assert recovered["duration_seconds"] == pytest.approx(w.clock - windows[0].clock)


def test_a_direct_wall_step_gives_no_negative_duration_and_ordered_stamps() -> None:
    """A source whose window times step back themselves (the stream reopened after a step)."""
    det = Detector(threshold=1.0, reminder_seconds=5.0)
    stamps = Stamps()
    wall = [1000.0 + i for i in range(10)] + [1000.0 + STEP + 10 + i for i in range(10)]
    mono = [float(i) for i in range(20)]
    records = []
    for i, (t, m) in enumerate(zip(wall, mono, strict=True)):
        score = 5.0 if i < 15 else 0.0
        records += [e.to_dict() for e in det.update(score, stamps.stamp(t), i, clock=m)]
    assert [r["event"] for r in records] == ["alert", "reminder", "reminder", "recovered"]
    assert [r.get("duration_seconds") for r in records[1:]] == [5.0, 10.0, 15.0]
    assert all(b["time"] >= a["time"] for a, b in itertools.pairwise(records))


def test_uptime_is_measured_on_the_monotonic_clock(tmp_path, monkeypatch) -> None:
    mono = {"now": 100.0}
    info = SimpleNamespace(
        name="m", version="1", id="m:1", window_seconds=1.0, sample_rate=16000, members=()
    )
    board = StatusBoard(tmp_path / "status.json", info, monotonic=lambda: mono["now"])
    import edgeasd.agent.control.status as status_module

    real = status_module.time.time
    monkeypatch.setattr(status_module.time, "time", lambda: real() + STEP)
    mono["now"] += 42.0
    assert board.snapshot()["uptime_seconds"] == 42.0


# ---------------------------------------------------------------------------- campaign

_STEPS = st.lists(st.sampled_from([0.0, 0.0, 0.0, -3600.0, -5.0, -0.5, 2.0, 600.0]), max_size=60)
_SCORES = st.lists(st.sampled_from([0.0, 5.0]), min_size=1, max_size=60)


def _campaign(steps: list[float], scores: list[float], reminder: float) -> dict[str, int]:
    """One window a second; the wall clock steps by ``steps[i]`` before window i.

    Checked against a plain reference on the monotonic clock: reminders exactly every
    ``reminder`` seconds of an episode, durations equal to the monotonic time since the
    alert, stamps never going back.
    """
    det = Detector(threshold=1.0, reminder_seconds=reminder)
    stamps = Stamps()
    wall, out, start, noticed = 1e6, [], None, None
    for i, score in enumerate(scores):
        wall += 1.0 + (steps[i] if i < len(steps) else 0.0)
        for e in det.update(score, stamps.stamp(wall), i, clock=float(i)):
            out.append(e.to_dict())
            if e.event == "alert":
                start = noticed = i
            else:
                assert e.duration == i - start
                if e.event == "reminder":
                    assert i - noticed == reminder  # never late, never early
                    noticed = i
        if det.alerting and start is not None and i - noticed >= reminder and score > 1.0:
            raise AssertionError(f"reminder missing at window {i}")
    times = [r["time"] for r in out]
    assert all(b >= a for a, b in itertools.pairwise(times))
    assert all(r.get("duration_seconds", 0.0) >= 0 for r in out)
    return {"events": len(out), "steps_back": sum(s < 0 for s in steps)}


@settings(max_examples=60, deadline=None)
@given(steps=_STEPS, scores=_SCORES, reminder=st.sampled_from([2.0, 3.0, 5.0]))
def test_clock_step_campaign(steps, scores, reminder) -> None:
    _campaign(steps, scores, reminder)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(steps=_STEPS, scores=_SCORES, reminder=st.sampled_from([2.0, 3.0, 5.0]))
def test_clock_step_campaign_long(steps, scores, reminder) -> None:
    _campaign(steps, scores, reminder)
