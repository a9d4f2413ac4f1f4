"""The status text from snapshots: plain words and numbers, one word for the state."""

from __future__ import annotations

import re

import pytest

from edgeasd.cli import status_view

NOW = 1_790_000_000.0


def snapshot(**over):
    s = {
        "state": "running",
        "pid": 4242,
        "started": NOW - 3 * 3600,
        "updated": NOW - 5,
        "model": {
            "name": "edgeasd-spectral",
            "version": "v1",
            "id": "edgeasd-spectral-v1:a592903d71a6279a",
            "window_seconds": 10.0,
            "sample_rate": 16000,
            "members": [],
        },
        "windows": 1080,
        "windows_scored": 1070,
        "alerts": 0,
        "last": {
            "time": "2026-09-21T15:33:15.000+00:00",
            "score": 0.8381234567890123,
            "threshold": 4.288123456789,
            "decision": "normal",
        },
        "threshold": 4.288123456789,
        "threshold_source": "bank of 120: 2 x the largest of 12 forward-chaining scores = 4.288",
        "threshold_report": {
            "predicted_false_alarm_rate": 0.0333333333333,
            "predicted_false_alarms_per_day": 2880.0000001,
            "forecast": {"words": "false alerts a day: about 0.3 (at most 0.9)"},
            "rule": "auto",
            "warning": "condition 'target': 3.3 min enrolled; alerts are provisional",
        },
        "commissioning": [
            {"condition": "source", "words": "condition 'source': commissioned"},
            {
                "condition": "target",
                "words": "condition 'target': 3.3 min enrolled; alerts are provisional",
            },
        ],
        "bank": {"source": 100, "target": 20},
        "bank_size": 120,
        "learning": None,
        "warnings": [],
        "enrolling": None,
        "source": {
            "kind": "microphone",
            "device": "USB Audio",
            "frames": 16000 * 3600,
            "overflows": 0,
        },
        "fleet": {
            "mqtt": {"broker": "broker.plant:1883", "connected": True, "queued": 0, "dropped": 0},
            "metrics": {"textfile": "/run/edgeasd/edgeasd.prom", "http": None},
        },
        "logs": {},
        "status_file": {"dropped": 0, "error": None},
        "stale": False,
    }
    s.update(over)
    return s


UGLY = re.compile(r"None|\(\)|\[\]|\d\.\d{6,}|\de[+-]\d")


@pytest.mark.parametrize(
    "s",
    [
        snapshot(),
        snapshot(
            state="learning",
            learning="7 more normal windows needed",
            threshold=None,
            threshold_report=None,
            last=None,
            windows=0,
            windows_scored=0,
        ),
        snapshot(enrolling={"collected": 0, "n": 60, "domain": "source", "alerts": "x"}),
        snapshot(stale=True, state="stopped"),
        {"state": "never started", "stale": True},
        snapshot(note="the daemon did not answer: busy"),
    ],
    ids=["running", "learning", "enrolling", "stopped", "never", "busy"],
)
def test_status_text_is_plain(s):
    text = status_view.status_text(s, NOW)
    assert not UGLY.search(text), text
    first = text.splitlines()[0]
    assert re.fullmatch(r"state: +[a-z]+", first), first
    assert first.split()[-1] in status_view.STATE_WORDS
    labels = [line.split(":")[0] for line in text.splitlines()]
    assert len({line.index(line.split(":", 1)[1].strip()) for line in text.splitlines()}) == 1, (
        "values aligned in one column"
    )
    assert labels[0] == "state"


def test_running_status_reads_as_an_operator_expects():
    text = status_view.status_text(snapshot(), NOW)
    assert "state:" in text and text.splitlines()[0].endswith("running")
    assert "threshold:" in text and "4.29 (bank of 120" in text
    assert "forecast:      false alerts a day: about 0.3 (at most 0.9)" in text
    assert "condition:     condition 'source': commissioned" in text
    assert text.count("condition 'target': 3.3 min enrolled") == 1  # not again as "calibrate"
    assert "120 references (source 100, target 20)" in text
    assert "score 0.838 against 4.29" in text
    assert "connected to broker.plant:1883; 0 events queued on disk, 0 dropped" in text
    assert "metrics:" in text and "/run/edgeasd/edgeasd.prom" in text
    assert "microphone 'USB Audio': 1 h of audio" in text
    assert "(3 h, pid 4242)" in text


def test_enrollment_progress_shows_from_the_first_second():
    s = snapshot(enrolling={"collected": 0, "n": 60, "domain": "target"})
    text = status_view.status_text(s, NOW)
    assert text.splitlines()[0].endswith("enrolling")
    assert "0 of 60 windows of condition 'target' (0 s of 10 min)" in text


def test_mqtt_down_is_said():
    s = snapshot(
        fleet={"mqtt": {"broker": "b:1883", "connected": False, "queued": 14, "dropped": 2}}
    )
    assert (
        "NOT connected to b:1883; 14 events queued on disk, 2 dropped"
        in status_view.status_text(s, NOW)
    )


def test_sections_can_be_added_after_a_named_one(monkeypatch):
    monkeypatch.setattr(status_view, "SECTIONS", list(status_view.SECTIONS))
    status_view.add_section(
        "extra", lambda s, now: [("commissioning", "pump 3 of 5")], after="bank"
    )
    rows = status_view.status_rows(snapshot(), NOW)
    labels = [label for label, _ in rows]
    assert labels[labels.index("bank") + 1] == "commissioning"
    with pytest.raises(KeyError, match="no status section named 'nope'"):
        status_view.add_section("x", lambda s, now: [], after="nope")
