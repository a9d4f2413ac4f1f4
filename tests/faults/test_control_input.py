"""Fault suite, control messages and reloads that killed or misled the daemon (issue 20).

Malformed control lines got ``Internal`` and a traceback in the log, duplicate keys acted
on the last one, and a bad configuration on reload (SIGHUP or the socket's ``reload``)
killed the daemon while the client was told ``reloading: true``. Each case runs against a
real daemon subprocess.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml
from e2e.harness import running_daemon

from edgeasd.agent.control.client import ControlClient
from edgeasd.errors import ControlError

#: (what, request line, what the answer says)
MALFORMED = [
    ("op as a list", b'{"op": ["status"]}', "unknown control request op"),
    ("op as an object", b'{"op": {"a": 1}}', "unknown control request op"),
    ("deep nesting", b'{"op": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON"),
    ("5001-digit n", b'{"op":"enroll_next","domain":"d","n":' + b"9" * 5001 + b"}", "n"),
    ("huge n", b'{"op":"enroll_next","domain":"d","n":' + b"9" * 400 + b"}", "n"),
    ("duplicate op", b'{"op":"status","op":"reload"}', "duplicate key 'op'"),
    ("duplicate n", b'{"op":"enroll_next","n":1,"n":2,"domain":"d"}', "duplicate key 'n'"),
]


def _ask(path: Path, line: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(path))
        s.sendall(line + b"\n")
        return json.loads(s.makefile("rb").readline())


def test_malformed_control_messages_get_a_named_control_error(tmp_path) -> None:
    setup, proc = running_daemon(tmp_path)
    sock = setup.run_dir / "control.sock"
    try:
        for what, line, why in MALFORMED:
            reply = _ask(sock, line)
            assert reply["ok"] is False, (what, reply)
            assert reply["type"] == "ControlError", (what, reply)
            assert why in reply["error"], (what, reply)
            assert len(reply["error"]) < 500, (what, reply)
        assert proc.poll() is None
        assert ControlClient(sock).request("status")["state"] == "running"
    finally:
        setup.stop(proc)
    log = setup.log()
    assert "Traceback" not in log and "internal error" not in log, log
    assert "configuration reloaded" not in log  # {"op":"status","op":"reload"} reloaded


def _rewrite(setup, text: str) -> None:
    setup.config.write_text(text)


BAD_RELOADS = [
    ("unhashable key", "logs: {[1, 2]: 3}\n", "a key must be a plain value"),
    ("5000-digit integer", "detector:\n  k: " + "9" * 5000 + "\n", "an integer of 5000 digits"),
]


@pytest.mark.parametrize("how", ["socket", "SIGHUP"])
def test_a_bad_config_on_reload_keeps_the_running_one_and_says_why(tmp_path, how) -> None:
    setup, proc = running_daemon(tmp_path, detector={"k": 1, "n": 2})
    good = setup.config.read_text()
    client = ControlClient(setup.run_dir / "control.sock")
    try:
        for what, text, why in BAD_RELOADS:
            _rewrite(setup, _merge(good, text))
            if how == "socket":
                with pytest.raises(ControlError, match=why):
                    client.request("reload")
            else:
                proc.send_signal(signal.SIGHUP)
                _wait_log(setup, why)
            _wait_log(setup, "reload failed, keeping the running configuration")
            time.sleep(0.5)
            assert proc.poll() is None, (what, setup.log())
            scored = client.request("status")["windows_scored"]
            setup.wait_for(lambda s, n=scored: s["windows_scored"] > n, what="scoring on")
        _rewrite(setup, _merge(good, "detector:\n  n: 3\n"))  # a good one still applies
        assert client.request("reload")["reloaded"] is True
        _wait_log(setup, "configuration reloaded")
    finally:
        setup.stop(proc)
    assert "Traceback" not in setup.log()


def _merge(text: str, extra: str) -> str:
    """``text`` with the sections of ``extra`` merged in (raw text: values may be huge)."""
    data = yaml.safe_load(text)
    data.pop(extra.split(":", 1)[0], None)
    return yaml.safe_dump(data) + extra


def _wait_log(setup, needle: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in setup.log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the daemon's log:\n{setup.log()}")


#: Bad configuration files a reload may meet, each appended to the good one.
_BAD_TAILS = [
    "logs: {[1, 2]: 3}\n",
    "detector:\n  k: " + "9" * 5000 + "\n",
    "mqtt:\n  site: *nope\n",
    "window: [\n",
    "paths:\n  state_dir: /\n",
    "detector:\n  k: 5\n  n: 2\n",
    "x" * 70_000 + "\n",
]


def _reload_storm(tmp_path: Path, rounds: int) -> dict[str, int]:
    """``rounds`` reloads, alternately over the socket and by SIGHUP, of good and bad files.

    The daemon must survive each, answer every socket reload (the error names the file),
    and keep scoring; the windows scored must grow through the storm.
    """
    setup, proc = running_daemon(tmp_path)
    good = setup.config.read_text()
    client = ControlClient(setup.run_dir / "control.sock", timeout=30)
    counts = {"trials": 0, "refused": 0, "reloaded": 0, "deaths": 0}
    try:
        before = client.request("status")["windows_scored"]
        for i in range(rounds):
            bad = i % 3 != 2
            setup.config.write_text(_merge(good, _BAD_TAILS[i % len(_BAD_TAILS)]) if bad else good)
            counts["trials"] += 1
            if i % 2 == 0:
                try:
                    client.request("reload")
                    counts["reloaded"] += 1
                except ControlError as exc:
                    assert str(setup.config) in exc.message, exc.message
                    counts["refused"] += 1
            else:
                proc.send_signal(signal.SIGHUP)
                time.sleep(0.3)
            if proc.poll() is not None:
                counts["deaths"] += 1
                break
        _write_whole(setup.config, good)
        scored = client.request("status")["windows_scored"]
        setup.wait_for(lambda s: s["windows_scored"] > scored, what="scoring after the storm")
        assert scored > before
    finally:
        if proc.poll() is None:
            setup.stop(proc)
    print(f"reload storm: {counts}")
    assert "Traceback" not in setup.log()
    return counts


def _write_whole(path: Path, text: str) -> None:
    """Replace the file at once (a temporary file renamed), as an editor saves it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def test_reload_storm(tmp_path) -> None:
    counts = _reload_storm(tmp_path, 12)
    assert counts["deaths"] == 0 and counts["refused"] >= 3


@pytest.mark.slow
def test_reload_storm_long(tmp_path) -> None:
    counts = _reload_storm(tmp_path, 300)
    assert counts["deaths"] == 0 and counts["refused"] >= 90
