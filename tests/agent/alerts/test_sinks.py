"""JSON-lines logs: rotation, reading across rotation, following, formatting."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.agent.alerts.detector import Detector, make_event
from edgeasd.agent.alerts.event_format import format_event
from edgeasd.agent.alerts.event_log import JsonlLog, encode_event, read_events, rotated
from edgeasd.agent.alerts.sinks import EventSinks
from edgeasd.errors import InputError


def _events(n, start=0):
    return [{"time": f"t{i}", "event": "window", "i": i, "pad": "x" * 40} for i in range(start, n)]


def test_rotation_caps_size_and_keeps_order(tmp_path):
    path = tmp_path / "logs" / "scores.jsonl"
    with JsonlLog(path, max_bytes=1000, backups=3) as sink:
        for e in _events(200):
            sink.write(e)
    files = [rotated(path, i) for i in range(4)]
    assert all(f.exists() for f in files) and not rotated(path, 4).exists()
    assert all(f.stat().st_size <= 1000 for f in files)
    kept = [json.loads(line)["i"] for f in reversed(files) for line in f.read_text().splitlines()]
    assert kept == list(range(200 - len(kept), 200))  # newest kept, contiguous, in order
    assert [e["i"] for e in read_events(path)] == kept
    assert [e["i"] for e in read_events(path, last=5)] == kept[-5:]


def test_backups_zero_truncates_and_reopening_appends(tmp_path):
    path = tmp_path / "a.jsonl"
    sink = JsonlLog(path, max_bytes=300, backups=0)
    for e in _events(20):
        sink.write(e)
    sink.close()
    assert not rotated(path, 1).exists() and path.stat().st_size <= 300
    sink = JsonlLog(path, max_bytes=10**6, backups=0)  # a restart appends to the live file
    before = len(list(read_events(path)))
    sink.write({"event": "x"})
    sink.close()
    assert len(list(read_events(path))) == before + 1


def test_oversized_line_still_written(tmp_path):
    path = tmp_path / "a.jsonl"
    with JsonlLog(path, max_bytes=4096, backups=1) as sink:
        sink.write({"event": "big", "data": "y" * 10000})
        sink.write({"event": "small"})
    assert [e["event"] for e in read_events(path)] == ["big", "small"]


def test_encoding_of_numpy_and_non_finite():
    line = encode_event({"event": "window", "score": np.float32(1.5), "n": np.int64(3),
                         "bad": float("nan"), "v": [np.float64(np.inf), 1]})  # fmt: skip
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"event": "window", "score": 1.5, "n": 3, "bad": None,
                                "v": [None, 1]}  # fmt: skip
    with pytest.raises(InputError):
        encode_event(["not", "a", "dict"])


def test_each_line_is_visible_immediately(tmp_path):
    path = tmp_path / "a.jsonl"
    sink = JsonlLog(path)
    sink.write({"event": "alert"})
    assert json.loads(path.read_text()) == {"event": "alert"}  # no close, no flush
    sink.close()


def test_malformed_and_partial_lines_are_skipped(tmp_path, caplog):
    path = tmp_path / "a.jsonl"
    path.write_text('{"event": "a"}\nnot json\n[1, 2]\n\n{"event": "b"}\n{"event": "parti')
    with caplog.at_level(logging.WARNING):
        assert [e["event"] for e in read_events(path)] == ["a", "b"]
    assert "malformed" in caplog.text
    assert list(read_events(tmp_path / "absent.jsonl")) == []


WRITER = """
import sys, time
from edgeasd.agent.alerts.event_log import JsonlLog
sink = JsonlLog(sys.argv[1], max_bytes=2000, backups=2)
for i in range(int(sys.argv[2])):
    sink.write({"event": "window", "i": i, "pad": "z" * 50})
    time.sleep(0.002)
"""


def test_follow_across_rotation_with_a_writer_process(tmp_path):
    path = tmp_path / "scores.jsonl"
    JsonlLog(path).write({"event": "window", "i": -1})
    n = 300
    done = threading.Event()
    got = []

    def consume():
        for e in read_events(path, follow=True, poll_seconds=0.01, stop=done.is_set):
            got.append(e["i"])
            if e["i"] == n - 1:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    subprocess.run([sys.executable, "-c", WRITER, str(path), str(n)], check=True, timeout=60)
    reader.join(timeout=20)
    done.set()
    reader.join(timeout=5)
    assert got == list(range(-1, n))  # every line exactly once, in order, across rotations


def test_follow_picks_up_a_new_file_and_stops(tmp_path):
    path = tmp_path / "alerts.jsonl"
    stop = threading.Event()
    got = []
    reader = threading.Thread(
        target=lambda: got.extend(
            read_events(path, follow=True, poll_seconds=0.01, stop=stop.is_set)
        )
    )
    reader.start()  # the file does not exist yet
    time.sleep(0.05)
    with JsonlLog(path) as sink:
        sink.write({"event": "alert", "score": 3.0})
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    reader.join(timeout=5)
    assert not reader.is_alive() and got == [{"event": "alert", "score": 3.0}]


def test_format_event_alert_and_recovered():
    det = Detector(2.0, k=2, n=3, threshold_source="bank auto")
    det.update(3.0, 1700000000.0, 0)
    (alert,) = det.update(4.25, 1700000010.0, 1)
    text = format_event(alert.to_dict())
    assert (
        "ALERT" in text
        and "the machine sounds different: score 4.25 above the threshold 2.00" in text
    )
    assert "in 2 of the last 3 windows (window 1)" in text and "=" not in text
    # the id `edgeasd feedback` takes, once the daemon gave the episode one
    with_id = format_event({**alert.to_dict(), "alert_id": "20231114-221330-1"})
    assert with_id.endswith("(window 1; alert 20231114-221330-1)")
    det.update(1.0, 1700000020.0, 2)
    (rec,) = det.update(1.0, 1700000030.0, 3)
    text = format_event(rec.to_dict())
    assert "RECOVERED  sounds normal again after 20 s: score 1.00 below the threshold 2.00" in text
    assert "peak was 4.25" in text


def test_format_event_says_the_reason_in_words():
    silence = format_event(
        make_event("signal", 0.0, previous="ok", status="silence", rms_dbfs=-95.5)
    )
    assert "SIGNAL" in silence and "digital silence" in silence and "=" not in silence
    back = format_event(make_event("signal", 0.0, previous="dead", status="ok"))
    assert "sound is back (was: no signal)" in back
    dead = make_event(
        "alert", 0.0, kind="no_signal", status="dead", window_index=5, no_signal_seconds=60.0
    )
    assert "no signal for 1 min: a dead or unplugged microphone" in format_event(dead)
    other = format_event(make_event("reload", 0.0, changed_keys=3))
    assert "RELOAD" in other and "changed keys 3" in other
    assert format_event({}).startswith("?")


def test_event_sinks_route_by_kind(tmp_path, caplog):
    logger = logging.getLogger("test.sinks")
    sinks = EventSinks(tmp_path / "alerts.jsonl", tmp_path / "scores.jsonl", logger=logger)
    with caplog.at_level(logging.INFO, logger="test.sinks"):
        sinks.emit(make_event("window", 0.0, score=1.0, threshold=2.0))
        sinks.emit(make_event("alert", 1.0, score=3.0, threshold=2.0))
        sinks.emit(make_event("enrolled", 2.0, count=5))
    sinks.flush()
    sinks.close()
    assert [e["event"] for e in read_events(tmp_path / "scores.jsonl")] == ["window"]
    assert [e["event"] for e in read_events(tmp_path / "alerts.jsonl")] == ["alert", "enrolled"]
    levels = [(r.levelname, r.getMessage().split()[2]) for r in caplog.records]
    assert levels == [("WARNING", "ALERT"), ("INFO", "ENROLLED")]


@pytest.mark.parametrize("backups", [9, 2])
def test_follow_survives_several_rotations_between_polls(tmp_path, backups):
    path = tmp_path / "scores.jsonl"
    sink = JsonlLog(path, max_bytes=600, backups=backups)
    sink.write({"event": "window", "i": 0})
    follower = read_events(path, follow=True, poll_seconds=0.001)
    assert next(follower)["i"] == 0
    for i in range(1, 40):  # about 5 rotations while the follower is not looking
        sink.write({"event": "window", "i": i, "pad": "p" * 60})
    got = []
    while not got or got[-1] != 39:
        got.append(next(follower)["i"])
    kept = [e["i"] for e in read_events(path)]
    if backups == 9:  # nothing deleted: every line once, in order
        assert got == kept[1:] == list(range(1, 40))
    else:  # the oldest files are deleted: what its open file held, then all that is kept
        assert got == sorted(set(got)) and got[-len(kept) :] == kept and len(got) > len(kept)
    follower.close()
    sink.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 300), min_size=1, max_size=80),
    st.integers(100, 1500),
    st.integers(0, 4),
)
def test_rotation_property(tmp_path_factory, sizes, max_bytes, backups):
    """Whatever the line sizes: files stay capped and hold a contiguous, ordered suffix."""
    path = tmp_path_factory.mktemp("rot") / "log.jsonl"
    with JsonlLog(path, max_bytes=max_bytes, backups=backups) as sink:
        for i, size in enumerate(sizes):
            sink.write({"i": i, "pad": "q" * size})
    files = [rotated(path, i) for i in range(backups + 2) if rotated(path, i).exists()]
    assert len(files) <= backups + 1
    for f in files:
        lines = f.read_bytes().splitlines(keepends=True)
        assert f.stat().st_size <= max_bytes or len(lines) == 1
    kept = [e["i"] for e in read_events(path)]
    assert kept == list(range(len(sizes) - len(kept), len(sizes))) and kept
    if len(kept) < len(sizes):  # lines are dropped only once every backup slot is used
        assert len(files) == backups + 1
