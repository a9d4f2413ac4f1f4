"""What the daemon and its clients say, as real subprocesses (issue 19).

``run`` says when it starts (version, model, bank, threshold, source), when it is ready, why
it stops and that it stopped; ``status`` reads in plain words and numbers; ``tail`` in words
under a header naming its log; ``enroll --next`` takes a duration and shows its progress;
``config check`` and ``doctor`` refuse a file source ``run`` would refuse.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from e2e.harness import RATE, REPO, feed_signal, make_setup, write_normal
from edgeasd import __version__
from edgeasd.audio.io import write_audio

#: What must never show in the operator's text.
UGLY = re.compile(r"None|\(\)|\d\.\d{6,}|\de[+-]\d|\w+=\S")


def _feed(path, parts, seed=100):
    write_audio(path, feed_signal(parts, seed), RATE, subtype="FLOAT")
    return path


def test_run_status_and_tail_say_what_happens(tmp_path):
    feed = _feed(tmp_path / "feed.wav", [(4, False), (3, True), (3, False)])
    setup = make_setup(tmp_path / "agent", {"kind": "file", "path": str(feed), "realtime": True})
    normal = [write_normal(tmp_path / f"n{i}.wav", 3, seed=10 + i) for i in range(2)]
    setup.cli("enroll", *map(str, normal), check=True)  # 2 groups: a threshold
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        setup.wait_for(lambda s: s["windows_scored"] >= 2, what="scores")
        status = setup.cli("status")
        assert status.returncode == 0, status.stderr
        text = status.stdout
        assert re.match(r"state: +running\n", text), text
        assert not UGLY.search(text), text
        assert re.search(r"^threshold: +\d+\.\d+ \(bank of 6", text, re.M)
        assert re.search(r"^bank: +6 references \(source 6\)$", text, re.M)
        assert re.search(
            r"^last window: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ s ago\): ", text, re.M
        )
        assert re.search(r"^metrics: +\S+edgeasd\.prom$", text, re.M)
        setup.wait_for(lambda s: s["alerts"] >= 1, timeout=30, what="an alert")
        tail = setup.cli("tail")
        lines = tail.stdout.splitlines()
        assert lines[0] == (
            f"alerts, recoveries, signal changes, enrollments from {setup.logs}/alerts.jsonl: "
            "the last 20, newest last"
        )
        alert = next(line for line in lines if "ALERT" in line)
        assert re.search(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ALERT      the machine sounds different: score "
            r"\d+\.?\d* above the threshold \d+\.\d+, in \d of the last \d windows"
            r"(; provisional \(condition [^)]+ commissioning\))? \(window \d+; alert "
            r"\d{8}-\d{6}-\d+\)$",
            alert,
        ), alert
        assert not UGLY.search(tail.stdout), tail.stdout
    finally:
        code = setup.stop(proc, signal.SIGTERM)
    assert code == 0
    log = setup.log()
    started = next(line for line in log.splitlines() if "started edgeasd" in line)
    assert re.search(
        rf"INFO edgeasd: started edgeasd {re.escape(__version__)}: model test-\S+; bank 6 "
        rf"references \(source 6\); threshold \d+\.\d+ \(rule auto\); source file {feed}$",
        started,
    ), started
    assert (
        "INFO edgeasd: ready: audio arriving, a 1 s window every 1 s; control socket "
        f"{setup.run_dir}/control.sock" in log
    )
    assert "INFO edgeasd: stopping (SIGTERM): the partial window is dropped" in log
    assert re.search(
        r"INFO edgeasd: stopped after \d+ s: \d+ windows, \d+ scored, \d+ alerts?$", log, re.M
    )
    order = [
        log.index(w) for w in ("started edgeasd", "ready:", "stopping (SIGTERM)", "stopped after")
    ]
    assert order == sorted(order)


def test_the_lifecycle_lines_reach_the_journal(tmp_path):
    """Under systemd (JOURNAL_STREAM matches stderr) each line carries its priority."""
    feed = _feed(tmp_path / "feed.wav", [(3, False)])
    setup = make_setup(tmp_path / "agent", {"kind": "file", "path": str(feed), "realtime": False})
    script = (
        "import os, sys; st = os.fstat(2); "
        "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'; "
        "from edgeasd.cli import main; sys.exit(main(['run', '--config', sys.argv[1]]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(setup.config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=setup.env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    journal = proc.stderr.splitlines()
    for what in (
        "started edgeasd",
        "ready: audio arriving",
        "stopping (the source ended)",
        "stopped after",
    ):
        assert any(line.startswith("<6>edgeasd: " + what) for line in journal), (what, journal)


def test_enroll_next_takes_a_duration_and_shows_progress(tmp_path):
    import numpy as np
    from support.onnx_models import machine_sound

    # 2 s of sound, 2 s of digital zeros, then sound: the windows without signal are skipped
    parts = [
        machine_sound(2, RATE, seed=1),
        np.zeros(2 * RATE, np.float32),
        machine_sound(30, RATE, seed=2),
    ]
    feed = tmp_path / "feed.wav"
    write_audio(feed, np.concatenate(parts), RATE, subtype="FLOAT")
    setup = make_setup(tmp_path / "agent", {"kind": "file", "path": str(feed), "realtime": True})
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        result = setup.cli("enroll", "--next", "5s", timeout=60)
        assert result.returncode == 0, result.stderr
        err = result.stderr.splitlines()
        assert err[0].startswith(
            "enrolling the next 5 good live windows (5 s of audio) as condition 'source'"
        )
        progress = [line for line in err if line.startswith("collected ")]
        assert (
            progress[-1].startswith("collected 5 of 5 windows")
            or "collected 4 of 5" in progress[-1]
        )
        assert any("skipped 2 (not enrolled): no signal" in line for line in progress), err
        assert "enrolled 5 references by the running daemon" in result.stdout
        files = [write_normal(tmp_path / f"f{i}.wav", 3, seed=20 + i) for i in range(2)]
        by_file = setup.cli("enroll", "--domain", "target", *map(str, files), timeout=60)
        assert by_file.returncode == 0, by_file.stderr
        assert "by the running daemon" in by_file.stdout
        for i, f in enumerate(files, 1):  # one progress line per file, in order
            assert f"file {i} of 2: {f}: 3 windows (3 s of audio)" in by_file.stderr
    finally:
        setup.stop(proc)
    bad = setup.cli("enroll", "--next", "ten")
    assert bad.returncode == 2 and "a duration of audio (10m, 90s, 1h)" in bad.stderr


def test_config_check_and_doctor_refuse_a_missing_file_source(tmp_path):
    setup = make_setup(tmp_path, {"kind": "file", "path": str(tmp_path / "missing.wav")})
    check = setup.cli("config", "check")
    assert check.returncode == 2 and "configuration ok" not in check.stdout
    assert f"error: source.path: audio path not found: {tmp_path}/missing.wav" in check.stderr
    assert "source.kind: demo" in check.stderr
    doctor = setup.cli("doctor")
    assert doctor.returncode == 1
    assert re.search(r"^\[FAIL\] source +source\.path: audio path not found", doctor.stdout, re.M)
    run = setup.cli("run", timeout=60)
    assert run.returncode == 2 and "audio path not found" in run.stderr  # what the checks predicted


def test_doctor_names_the_network_and_the_way_without_a_microphone(tmp_path):
    from fleet.conftest import free_port

    closed = free_port()
    setup = make_setup(
        tmp_path,
        {"kind": "microphone", "device": "no such microphone anywhere"},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": closed, "machine": "pump-3"},
        metrics={"http_port": free_port()},
    )
    doctor = setup.cli("doctor")
    assert doctor.returncode == 1
    out = doctor.stdout
    assert re.search(r"^\[FAIL\] device ", out, re.M)
    hint = out.split("[FAIL] device", 1)[1].split("\n[", 1)[0]
    assert "source.kind: file" in hint and "source.kind: demo" in hint
    assert re.search(
        rf"^\[FAIL\] mqtt +cannot reach the MQTT broker 127\.0\.0\.1:{closed}: Connection refused",
        out,
        re.M,
    )
    assert re.search(r"^\[ok  \] metrics +metrics port 127\.0\.0\.1:\d+ free", out, re.M)
