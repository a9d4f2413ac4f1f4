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
from e2e.harness import make_setup, write_normal

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


def _running(tmp_path: Path, **sections):
    feed = write_normal(tmp_path / "feed.wav", 4, seed=7)
    setup = make_setup(
        tmp_path / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        **sections,
    )
    files = [write_normal(tmp_path / f"e{i}.wav", 3, seed=i) for i in range(2)]
    setup.cli("enroll", *map(str, files), check=True)
    proc = setup.start()
    setup.wait_ready(proc)
    setup.wait_for(lambda s: s["windows_scored"] >= 1, what="scoring")
    return setup, proc


def _ask(path: Path, line: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(path))
        s.sendall(line + b"\n")
        return json.loads(s.makefile("rb").readline())


def test_malformed_control_messages_get_a_named_control_error(tmp_path) -> None:
    setup, proc = _running(tmp_path)
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
    setup, proc = _running(tmp_path, detector={"k": 1, "n": 2})
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
    section = extra.split(":", 1)[0]
    data.pop(section, None)
    return yaml.safe_dump(data) + extra


def _wait_log(setup, needle: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in setup.log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the daemon's log:\n{setup.log()}")
