"""The daemon as a subprocess on the real capture path (PortAudio → ALSA feed).

Covers: ``enroll FILE`` without a daemon (direct mode); alerts only for the anomalous
windows; SIGTERM leaves the bank intact and flushes the logs; a missing device and a bad
configuration each give one clear message and a non-zero exit.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.alsa_feed import AlsaFeed

from e2e.harness import RATE, feed_signal, make_setup, write_normal
from edgeasd.scoring import load_bank

NORMAL_HEAD, ANOMALY, NORMAL_TAIL = 6, 3, 3  # seconds of the fed signal (1 s windows)
TOTAL = NORMAL_HEAD + ANOMALY + NORMAL_TAIL


def test_daemon_on_alsa_feed_alerts_only_on_anomaly(tmp_path) -> None:
    # A plain-file feed: byte-exact, delivered at once, then silence ("dead" windows).
    signal_ = feed_signal([(NORMAL_HEAD, False), (ANOMALY, True), (NORMAL_TAIL, False)])
    feed = AlsaFeed(tmp_path / "alsa", signal_, rate=RATE, realtime=False, tail_seconds=3)
    setup = make_setup(
        tmp_path / "agent", {"kind": "microphone", "device": feed.device_name, "capture_rate": RATE}
    )
    setup.env.update(feed.env)
    # direct mode (no daemon yet): two recordings, two groups
    a = write_normal(tmp_path / "a.wav", 3, seed=1)
    b = write_normal(tmp_path / "b.wav", 3, seed=2)
    out = setup.cli("enroll", str(a), str(b), check=True)
    assert "directly (no daemon running)" in out.stdout and "6 references" in out.stdout

    proc = setup.start()
    try:
        setup.wait_ready(proc)
        setup.wait_for(
            lambda s: (s.get("last") or {}).get("index", -1) >= TOTAL + 1,
            what=f"window {TOTAL + 1}",
        )
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    windows = {e["index"]: e for e in setup.events("scores.jsonl") if e["index"] < TOTAL}
    assert sorted(windows) == list(range(TOTAL)), "every fed window is logged once"
    anomalous = set(range(NORMAL_HEAD, NORMAL_HEAD + ANOMALY))
    flagged = {i for i, e in windows.items() if e["decision"] == "anomalous"}
    assert flagged == anomalous, [
        (i, e.get("score"), e.get("threshold")) for i, e in windows.items()
    ]
    for e in windows.values():
        assert e["decision"] in ("normal", "anomalous")
        assert {
            "time",
            "score",
            "threshold",
            "decision",
            "nearest_id",
            "nearest_domain",
            "level_dbfs",
            "processing_ms",
        } <= set(e)
    events = setup.events()
    alerts = [e for e in events if e["event"] == "alert" and e["kind"] == "anomaly"]
    assert [a["window_index"] for a in alerts] == [NORMAL_HEAD]
    # the feed's silence arrives faster than real time: if 60 s of it were processed before
    # SIGTERM, the dead input is an alert of its own kind, never before 60 s of silence
    dead = [e for e in events if e["event"] == "alert" and e["kind"] == "no_signal"]
    assert all(a["window_index"] >= TOTAL + 59 for a in dead), dead
    assert "bank" in alerts[0]["threshold_source"]
    recovered = [e for e in events if e["event"] == "recovered"]
    assert [r["window_index"] for r in recovered] == [NORMAL_HEAD + ANOMALY]
    # the silence after the feed: one signal event for the change, not one per window
    signals = [e for e in events if e["event"] == "signal"]
    assert [s["status"] for s in signals] == ["dead"]
    assert signals[0]["window_index"] == TOTAL
    # SIGTERM: bank intact, status says stopped
    assert len(load_bank(setup.state / "bank")) == 6
    assert setup.status()["state"] == "stopped"
    assert not (setup.run_dir / "control.sock").exists()


def test_missing_device_one_clear_message(tmp_path) -> None:
    setup = make_setup(tmp_path, {"kind": "microphone", "device": "no-such-microphone-xyz"})
    proc = setup.cli("run", timeout=60)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "no-such-microphone-xyz" in errors[0] and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    devices = setup.cli("devices", timeout=60)
    assert devices.returncode in (0, 1) and "Traceback" not in devices.stderr
    assert devices.stdout.strip(), "either a device list or a message that there is none"
    doctor = setup.cli("doctor", timeout=60)
    assert doctor.returncode == 1 and "[FAIL] device" in doctor.stdout, doctor.stdout
    assert "[ok  ] model" in doctor.stdout and "Traceback" not in doctor.stderr


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("detector:\n  k: 3\n  n: 2\n", "detector.k"),
        ("sourc:\n  kind: demo\n", "did you mean 'source'"),
        ("model: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_config_one_clear_message(tmp_path, yaml_text: str, needle: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    proc = subprocess.run(
        [sys.executable, "-m", "edgeasd", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("error:") == 1 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
