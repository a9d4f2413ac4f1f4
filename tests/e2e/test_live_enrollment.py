"""Enrollment against the running daemon: learning state, ``enroll --next``, ``enroll FILE``,
``status``, and SIGKILL during enrollments with no acknowledged enrollment lost."""

from __future__ import annotations

import random
import signal
import threading
import time

from e2e.harness import make_setup, write_normal
from edgeasd.agent.control.client import ControlClient
from edgeasd.errors import ControlError
from edgeasd.scoring import load_bank


def _file_source(tmp_path, **sections):
    feed = write_normal(tmp_path / "feed.wav", 4, seed=7)
    return make_setup(
        tmp_path / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        **sections,
    )


def test_learning_then_enroll_next_and_files_while_running(tmp_path) -> None:
    setup = _file_source(tmp_path)
    proc = setup.start()
    try:
        status = setup.wait_ready(proc)
        assert status["state"] == "learning" and status["learning_needed"] == 4
        out = setup.cli("status", check=True).stdout
        assert "learning" in out and "4 more normal windows needed" in out
        out = setup.cli("enroll", "--domain", "target", "--next", "2", check=True)
        assert "by the running daemon" in out.stdout and "target: 2" in out.stdout
        # the status file counts what is still needed when the next window is judged: wait
        setup.wait_for(lambda s: s["learning_needed"] == 2, timeout=60, what="2 still needed")
        files = [str(write_normal(tmp_path / f"n{i}.wav", 2, seed=20 + i)) for i in range(2)]
        out = setup.cli("enroll", *files, check=True)
        assert "4 references" in out.stdout and "2 group(s)" in out.stdout
        assert "bank: 6 references" in out.stdout
        scored = setup.wait_for(
            lambda s: s["windows_scored"] >= 2 and s, timeout=60, what="scoring"
        )
        assert scored["state"] == "running" and scored["learning_needed"] == 0
        assert scored["bank"] == {"source": 4, "target": 2}
        # SIGHUP reloads the configuration file (a fixed threshold now)
        text = setup.config.read_text() + "threshold:\n  rule: fixed\n  value: 42.0\n"
        setup.config.write_text(text)
        proc.send_signal(signal.SIGHUP)
        setup.wait_for(lambda s: s.get("threshold") == 42.0, what="the reloaded threshold")
        # logged just after the new threshold is in the status: wait for it, do not race it
        setup.wait_for(lambda s: "configuration reloaded" in setup.log(), what="the reload log")
        assert setup.stop(proc, signal.SIGTERM) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    bank = load_bank(setup.state / "bank")
    assert len(bank) == 6 and len(set(bank.groups_)) == 3
    flacs = sorted((setup.state / "audio").glob("*.flac"))
    assert len(flacs) == 3  # the --next group and the two files, kept for `bank rebuild`
    enrolled = [e for e in setup.events() if e["event"] == "enrolled"]
    assert [(len(e["ids"]), len(e["groups"])) for e in enrolled] == [(2, 1), (4, 2)]


def test_sigkill_during_enrollment_loses_no_acknowledged_enrollment(tmp_path) -> None:
    setup = _file_source(tmp_path)
    files = [str(write_normal(tmp_path / f"e{i}.wav", 1, seed=40 + i)) for i in range(3)]
    acked: list[int] = []
    rng = random.Random(3)
    for _round in range(2):
        proc = setup.start()
        try:
            setup.wait_ready(proc)
            client = ControlClient(setup.run_dir / "control.sock", timeout=30)
            stop = threading.Event()

            def enroll_loop(client=client, stop=stop) -> None:
                while not stop.is_set():
                    handles = [open(f, "rb") for f in files]
                    try:
                        fds = [h.fileno() for h in handles]
                        result = client.request(
                            "enroll_files", fds=fds, names=files, domain="source"
                        )
                    except ControlError:
                        return  # the daemon died mid-request: not acknowledged
                    finally:
                        for h in handles:
                            h.close()
                    acked.extend(result["ids"])

            worker = threading.Thread(target=enroll_loop)
            before = len(acked)
            worker.start()
            end = time.monotonic() + 30
            while len(acked) == before and time.monotonic() < end:
                time.sleep(0.01)
            time.sleep(rng.random() * 0.3)  # then kill at a random point of later requests
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            stop.set()
            worker.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        bank = load_bank(setup.state / "bank")
        assert set(acked) <= set(int(i) for i in bank.ids_)
    assert len(acked) >= 3, "some enrollments were acknowledged before the kills"
    # and the daemon starts again on the surviving bank
    proc = setup.start()
    try:
        status = setup.wait_ready(proc)
        assert status["bank_size"] >= len(acked)
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
