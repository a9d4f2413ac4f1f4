"""Decisions through the real daemon and CLI as subprocesses: a clipping fault alerts (flagged
``clipped``), a dead input is an alert of its own with its recovery, an enrollment or a reload
during an ongoing anomaly gives no second alert, and ``score`` on a batch with one unreadable
file writes every other row and exits non-zero."""

from __future__ import annotations

import csv
import io
import signal

import numpy as np
from support.onnx_models import machine_sound

from e2e.harness import RATE, Setup, make_setup, write_normal
from edgeasd.audio.io import write_audio


def _parts(parts: list[tuple[float, str]], seed: int = 100) -> np.ndarray:
    """(seconds, kind) parts: ``normal``, ``anomalous``, ``clipped`` (a fault loud enough to
    put several % of the samples at full scale) or ``dead`` (digital zeros)."""
    out = []
    for i, (sec, kind) in enumerate(parts):
        if kind == "dead":
            out.append(np.zeros(round(sec * RATE), np.float32))
            continue
        x = machine_sound(sec, RATE, anomalous=kind != "normal", seed=seed + i)
        out.append(np.clip(8.0 * x, -1.0, 1.0) if kind == "clipped" else x)
    return np.concatenate(out).astype(np.float32)


def _enrolled(tmp_path, feed: np.ndarray, *, realtime: bool = False, **sections) -> Setup:
    """A setup on a file source playing ``feed``, its bank enrolled directly (3 groups)."""
    path = tmp_path / "feed.wav"
    write_audio(path, feed, RATE, subtype="FLOAT")
    source = {"kind": "file", "path": str(path), "realtime": realtime, "loop": realtime}
    setup = make_setup(tmp_path / "agent", source, **sections)
    files = [str(write_normal(tmp_path / f"n{i}.wav", 2, seed=10 + i)) for i in range(3)]
    out = setup.cli("enroll", *files, check=True).stdout
    assert "directly (no daemon running)" in out and "state: ready" in out
    return setup


def _run_to_end(setup: Setup) -> list[dict]:
    proc = setup.start()
    assert proc.wait(120) == 0, setup.log()
    return setup.events()


def test_a_clipping_fault_is_scored_and_alerts_flagged_clipped(tmp_path) -> None:
    feed = _parts([(3, "normal"), (3, "clipped"), (3, "normal")])
    setup = _enrolled(tmp_path, feed)
    events = _run_to_end(setup)
    alerts = [e for e in events if e["event"] == "alert"]
    assert len(alerts) == 1, events
    (alert,) = alerts
    assert alert["kind"] == "anomaly" and alert["window_index"] == 3
    assert alert["clipped"] is True and alert["clip_fraction"] > 0.01
    # every alert states its threshold and the rule; a bank of a few recordings has no
    # forecast yet (no number), and its conditions are still commissioning: provisional
    assert alert["threshold_rule"] == "auto" and alert["threshold"] > 0
    assert "predicted_false_alarms_per_day" not in alert
    assert alert["provisional_conditions"] == ["source"]
    assert [e["event"] for e in events if e["event"] == "recovered"] == ["recovered"]
    windows = setup.events("scores.jsonl")
    faulty = [w for w in windows if 3 <= w["index"] < 6]
    assert all(w["decision"] == "anomalous" and w["clipped"] for w in faulty)
    assert all("score" in w for w in windows) and not any(
        w.get("clipped") for w in windows if w not in faulty
    )


def test_a_dead_input_is_an_alert_of_its_own_with_its_recovery(tmp_path) -> None:
    feed = _parts([(2, "normal"), (5, "dead"), (3, "normal"), (1, "dead"), (2, "normal")])
    setup = _enrolled(tmp_path, feed, quality={"no_signal_alert_seconds": 3.0})
    events = _run_to_end(setup)
    incidents = [(e["event"], e.get("kind")) for e in events if e["event"] != "signal"]
    assert incidents[0] == ("enrolled", None)  # the direct enrollment of the setup
    assert incidents[1:] == [("alert", "no_signal"), ("recovered", "no_signal")]  # 1 s: none
    alert, recovered = (e for e in events if e.get("kind") == "no_signal")
    assert alert["window_index"] == 4 and alert["status"] == "dead"  # windows 2-4: 3 s
    assert recovered["window_index"] == 7 and recovered["duration_seconds"] == 5.0
    decisions = [w["decision"] for w in setup.events("scores.jsonl")]
    assert (
        decisions
        == ["normal"] * 2 + ["no-signal"] * 5 + ["normal"] * 3 + ["no-signal"] + ["normal"] * 2
    )
    assert setup.status()["alerts"] == 1


def test_enrollment_and_reload_during_an_anomaly_give_no_second_alert(tmp_path) -> None:
    feed = _parts([(4, "anomalous")])  # looped in real time: one endless episode
    setup = _enrolled(tmp_path, feed, realtime=True)
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        setup.wait_for(lambda s: s["alerts"] >= 1, what="the alert")
        files = [str(write_normal(tmp_path / f"m{i}.wav", 2, seed=50 + i)) for i in range(2)]
        out = setup.cli("enroll", "--domain", "target", *files, check=True).stdout
        assert "by the running daemon" in out and "bank: 10 references" in out
        scored = setup.status()["windows_scored"]
        setup.wait_for(lambda s: s["windows_scored"] >= scored + 2, what="windows after enroll")
        proc.send_signal(signal.SIGHUP)  # a reload: the threshold is set in place again
        setup.wait_for(lambda s: "configuration reloaded" in setup.log(), what="the reload")
        scored = setup.status()["windows_scored"]
        setup.wait_for(lambda s: s["windows_scored"] >= scored + 2, what="windows after reload")
        status = setup.status()
        assert status["alerts"] == 1 and status["last"]["decision"] == "anomalous"
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [e["event"] for e in setup.events() if e["event"] != "signal"]
    assert events.count("alert") == 1 and "recovered" not in events
    assert events == ["enrolled", "alert", "enrolled"]  # the setup's direct one, the live one
    assert [e["via"] for e in setup.events() if e["event"] == "enrolled"] == ["direct", "daemon"]


def test_a_resumed_episode_keeps_its_alert_id_across_a_restart(tmp_path) -> None:
    """A fault that goes on over a daemon restart: the reminders after the restart carry the
    alert's ``alert_id`` (what ``edgeasd feedback`` takes), not none (issue 17)."""
    feed = _parts([(4, "anomalous")])  # looped in real time: one endless episode
    setup = _enrolled(tmp_path, feed, realtime=True, detector={"reminder_seconds": 1.5})
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        setup.wait_for(lambda s: s["alerts"] >= 1, what="the alert")
        assert setup.stop(proc) == 0
        before = len(setup.events())
        proc = setup.start()
        setup.wait_ready(proc)
        setup.wait_for(
            lambda s: sum(e["event"] == "reminder" for e in setup.events()[before:]) >= 2,
            what="two reminders after the restart",
        )
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [e for e in setup.events() if e.get("kind") == "anomaly"]
    (alert,) = [e for e in events if e["event"] == "alert"]  # one alert across the restart
    after = [e for e in setup.events()[before:] if e["event"] == "reminder"]
    assert len(after) >= 2
    assert all(e.get("alert_id") == alert["alert_id"] for e in after), after
    assert all(e["started"] == alert["time"] for e in after)


def test_score_batch_with_an_unreadable_file_writes_every_other_row(tmp_path) -> None:
    setup = _enrolled(tmp_path, _parts([(1, "normal")]))
    normal = tmp_path / "normal.wav"
    write_audio(normal, _parts([(2, "normal")], seed=7), RATE, subtype="FLOAT")
    loud = tmp_path / "loud.wav"
    write_audio(loud, _parts([(2, "clipped"), (1, "dead")], seed=8), RATE, subtype="FLOAT")
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio\n")
    proc = setup.cli("score", "--csv", str(normal), str(broken), str(loud))
    assert proc.returncode == 2, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["file"].rsplit("/", 1)[-1], r["decision"]) for r in rows] == [
        ("normal.wav", "normal"),
        ("normal.wav", "normal"),
        ("loud.wav", "anomalous"),
        ("loud.wav", "anomalous"),
        ("loud.wav", "no-signal"),  # dropped inside a usable file: shown with its reason
    ]
    assert rows[2]["clipped"] == "True" and float(rows[2]["clip_fraction"]) > 0.01
    assert rows[4]["reason"] == "dead" and rows[4]["score"] == ""
    assert "broken.wav" in proc.stderr and "error:" in proc.stderr
    assert "1 of 3 file(s) could not be scored" in proc.stderr and "Traceback" not in proc.stderr
    table = setup.cli("score", str(normal), str(loud), str(broken))
    assert table.returncode == 2
    lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in table.stdout.splitlines()[1:]}
    assert lines["normal.wav"].rstrip().endswith("normal")
    assert "ANOMALOUS" in lines["loud.wav"] and "2 clipped" in lines["loud.wav"]
    assert "1 no-signal (dead)" in lines["loud.wav"]
