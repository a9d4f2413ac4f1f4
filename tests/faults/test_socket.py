"""Fault suite, control socket: limits, timeouts, descriptors instead of paths, hostile
input, corrupt state files, and a fuzz of control messages against a running daemon.

The daemon runs as a subprocess (``edgeasd run``) on a looping real-time file source, so
"still scoring" is measured on its own status.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from e2e.harness import make_setup, running_daemon, write_normal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.agent.control.client import ControlClient
from edgeasd.agent.control.protocol import DaemonBusy
from edgeasd.agent.control.server import MAX_CONNECTIONS, ControlServer
from edgeasd.errors import ControlError
from edgeasd.scoring import load_bank


def _echo(request: dict, gone) -> dict:
    return {"op": request["op"]}


def _stop(setup, proc) -> None:
    if proc.poll() is None:
        assert setup.stop(proc) == 0
    assert "Traceback" not in setup.log()


# ---------------------------------------------------------------------------- limits


def test_idle_connections_are_closed_and_the_cap_answers_busy(tmp_path) -> None:
    with ControlServer(tmp_path / "c.sock", _echo, max_connections=2, idle_seconds=1.5) as srv:
        idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        for s in idle:
            s.connect(str(srv.path))
        end = time.monotonic() + 5
        while srv.active < 2 and time.monotonic() < end:
            time.sleep(0.01)
        with pytest.raises(DaemonBusy, match="busy: 2 control connections") as info:
            ControlClient(srv.path, timeout=5).request("status")
        assert "retry" in info.value.help
        # a silent client is dropped after idle_seconds: its slot is free again
        for s in idle:
            s.settimeout(5)
            assert s.recv(1) == b""
            s.close()
        assert ControlClient(srv.path, timeout=5).request("status") == {"op": "status"}
        # a trickling client cannot hold its slot either (the limit is per request)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
            slow.connect(str(srv.path))
            slow.settimeout(5)
            start = time.monotonic()
            for _ in range(40):
                try:
                    slow.sendall(b" ")
                except OSError:
                    break
                if time.monotonic() - start > 3:
                    break
                time.sleep(0.1)
            assert slow.recv(1) == b""
        assert srv.refused == 1


def test_a_full_listen_backlog_is_a_clear_busy_error(tmp_path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)  # never accepts: a stopped daemon
        held = []
        try:
            for _ in range(64):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect(str(path))
                except BlockingIOError:
                    s.close()
                    break
                held.append(s)
            with pytest.raises(DaemonBusy, match="backlog is full") as info:
                ControlClient(path, timeout=2).request("status")
            assert "kill -CONT" in info.value.help
        finally:
            for s in held:
                s.close()


def _raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"cannot open {n} sockets (hard limit {hard})")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def _proc_counts(pid: int) -> tuple[int, int]:
    threads = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Threads:")
    )
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def test_2000_idle_connections_under_ulimit_1024_do_not_kill_the_daemon(tmp_path) -> None:
    clients = 2000
    _raise_nofile(clients + 200)
    feed = write_normal(tmp_path / "feed.wav", 4, seed=7)
    setup = make_setup(
        tmp_path / "agent", {"kind": "file", "path": str(feed), "realtime": True, "loop": True}
    )
    files = [write_normal(tmp_path / f"e{i}.wav", 3, seed=i) for i in range(2)]
    setup.cli("enroll", *map(str, files), check=True)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    out = open(setup.root / "daemon.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeasd", "run", "--config", str(setup.config)],
        env=setup.env,
        stdout=out,
        stderr=subprocess.STDOUT,
        preexec_fn=limit,
    )
    held: list[socket.socket] = []
    try:
        setup.wait_ready(proc)
        setup.wait_for(lambda s: s["windows_scored"] >= 1, what="scoring")
        path = str(setup.run_dir / "control.sock")
        connected = refused = 0
        for _ in range(clients):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(path)
                connected += 1
            except OSError:  # backlog full for a moment: what a client sees as busy
                refused += 1
            held.append(s)
        threads, fds = _proc_counts(proc.pid)
        assert threads <= MAX_CONNECTIONS + 16, threads  # bounded, not one per client
        assert fds < 1024 - 100, fds
        # an operator meanwhile gets a clear answer and a non-zero exit, never a hang
        result = setup.cli("status", timeout=30)
        assert proc.poll() is None
        assert "Traceback" not in result.stderr
        assert re.search(r"^state: +(running|busy)$", result.stdout, re.M), result.stdout
        busy = "the daemon did not answer: the daemon is busy" in result.stdout
        assert result.returncode == (4 if busy else 0), result
        scored = setup.status()["windows_scored"]
        setup.wait_for(lambda s: s["windows_scored"] >= scored + 2, what="scoring on")
        for s in held:
            s.close()
        held.clear()
        status = setup.cli("status", "--json", check=True, timeout=30)
        assert json.loads(status.stdout)["state"] == "running"
        print(
            f"{clients} clients: {connected} connected, {refused} refused at connect, "
            f"daemon threads {threads}, fds {fds}, operator status busy: {busy}"
        )
        _stop(setup, proc)
    finally:
        for s in held:
            s.close()
        if proc.poll() is None:
            proc.kill()
        out.close()


def test_enroll_against_a_stopped_daemon_times_out_and_is_never_committed(tmp_path) -> None:
    setup, proc = running_daemon(tmp_path)
    try:
        before = len(load_bank(setup.state / "bank"))
        extra = write_normal(tmp_path / "extra.wav", 3, seed=33)
        proc.send_signal(signal.SIGSTOP)
        try:
            files = setup.cli("enroll", "--timeout", "2", str(extra), timeout=60)
            live = setup.cli("enroll", "--timeout", "2", "--next", "2", timeout=60)
        finally:
            proc.send_signal(signal.SIGCONT)
        for result in (files, live):
            assert result.returncode == 2, result
            assert "Traceback" not in result.stderr
        assert "did not answer 'enroll_files' within 2 s" in files.stderr
        assert "nothing of it is applied" in files.stderr
        assert "did not answer 'enroll_next' within 2 s" in live.stderr
        # the daemon wakes up, finds the abandoned requests and commits none of them
        scored = setup.status()["windows_scored"]
        setup.wait_for(lambda s: s["windows_scored"] >= scored + 4, what="scoring after SIGCONT")
        assert len(load_bank(setup.state / "bank")) == before
        assert not [e for e in setup.events() if e["event"] == "enrolled" and e["via"] == "daemon"]
        _stop(setup, proc)
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------------- trust nobody


def test_enroll_passes_descriptors_and_the_daemon_opens_no_path(tmp_path) -> None:
    setup, proc = running_daemon(tmp_path)
    sock_path = setup.run_dir / "control.sock"
    try:
        # the old path-based request: refused before anything is opened
        for line in (
            b'{"op": "enroll_files", "paths": ["/etc/shadow"], "domain": "x"}\n',
            b'{"op": "enroll_files", "names": ["/etc/shadow"], "domain": "x"}\n',
        ):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(sock_path))
                s.sendall(line)
                reply = json.loads(s.makefile("rb").readline())
            assert not reply["ok"]
            assert "shadow" not in reply["error"] or "descriptor" in reply["error"]
        # a pipe is not a file (it could block the daemon forever)
        r, w = os.pipe()
        try:
            with pytest.raises(ControlError, match="not a regular file"):
                ControlClient(sock_path).request(
                    "enroll_files", fds=[r], names=["pipe"], domain="x"
                )
        finally:
            os.close(r)
            os.close(w)
        # the CLI opens the file itself; the daemon logs who asked
        extra = write_normal(tmp_path / "extra.wav", 3, seed=33)
        result = setup.cli("enroll", "--domain", "target", str(extra), check=True)
        assert "by the running daemon" in result.stdout
        assert "control request 'enroll_files' from pid" in setup.log()
        assert f" uid {os.getuid()}" in setup.log()
        _stop(setup, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    # no descriptor leaked into the daemon: it ran, stopped cleanly; the bank holds the file
    bank = load_bank(setup.state / "bank")
    assert "target" in set(bank.domains_.tolist())


def test_an_unreadable_file_is_refused_by_the_client_as_permission_denied(tmp_path) -> None:
    """The client opens files as its own user: another user's 0600 file is refused there."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    from edgeasd.cli import main

    setup, proc = running_daemon(tmp_path)
    try:
        secret = write_normal(tmp_path / "secret.wav", 2, seed=1)
        os.chmod(secret, 0o600)
        os.chmod(setup.config, 0o644)
        for d in (tmp_path, *tmp_path.parents[:3]):
            os.chmod(d, os.stat(d).st_mode | 0o011)  # traversable, as /etc/edgeasd is
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the operator: an unprivileged user running `edgeasd enroll`
            code = 99
            try:
                os.close(read)
                sys.stderr = open(write, "w")
                os.setgid(65534)
                os.setuid(65534)
                code = main(["enroll", "--config", str(setup.config), str(secret)])
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as fh:
            stderr = fh.read()
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 2, stderr
        assert f"permission denied reading {secret}" in stderr
        # the daemon (root) was never asked to read it: nothing enrolled, nothing logged
        assert "enroll_files" not in setup.log()
        _stop(setup, proc)
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------------- state files


def _cli(setup, *args: str) -> subprocess.CompletedProcess:
    result = setup.cli(*args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[1, 2, 3]", "a JSON list, not an object"),
        (b'{"pid": "abc", "state": "running"}', "pid 'abc' is not a process id"),
        (b'{"pid": 1.5}', "pid 1.5 is not a process id"),
        (b"\x00\xff\xfe binary \x1b[2J", "is corrupt"),
        (b'{"pid": 1, "state": 7}', "malformed fields"),
    ],
)
def test_status_on_a_corrupt_status_file_is_a_named_error(tmp_path, content, needle) -> None:
    setup = make_setup(tmp_path, {"kind": "demo"})
    setup.run_dir.mkdir(parents=True, exist_ok=True)
    (setup.run_dir / "status.json").write_bytes(content)
    result = _cli(setup, "status")
    assert result.returncode == 2
    assert needle in result.stderr and "hint:" in result.stderr
    assert "\x1b" not in result.stderr


def test_a_reused_pid_does_not_make_a_dead_daemon_lookrunning_daemon(tmp_path) -> None:
    setup = make_setup(tmp_path, {"kind": "demo"})
    setup.run_dir.mkdir(parents=True, exist_ok=True)
    snapshot = {"state": "running", "pid": os.getpid(), "model": {"id": "m"}}  # a live pid
    (setup.run_dir / "status.json").write_text(json.dumps(snapshot))
    result = _cli(setup, "status")
    assert result.returncode == 3 and re.search(r"^state: +stopped$", result.stdout, re.M)
    assert "not running; its last snapshot:" in result.stdout


def test_status_and_tail_print_no_terminal_escapes(tmp_path) -> None:
    setup = make_setup(tmp_path, {"kind": "demo"})
    evil = "tgt\x1b]0;pwned\x07\n\rstate:      running\x1b[2J\u202e"
    setup.run_dir.mkdir(parents=True, exist_ok=True)
    snapshot = {
        "state": "stopped",
        "pid": 0,
        "model": {"id": evil},
        "bank": {evil: 3},
        "bank_size": 3,
        "last": {"decision": evil},
    }
    (setup.run_dir / "status.json").write_text(json.dumps(snapshot))
    setup.logs.mkdir(parents=True, exist_ok=True)
    event = {"time": "2026-11-30T10:00:00", "event": "enrolled", "domain": evil}
    (setup.logs / "alerts.jsonl").write_text(json.dumps(event) + "\n")
    for args in (("status",), ("tail",)):
        out = _cli(setup, *args).stdout
        assert not any(c in out for c in "\x1b\x07\r\u202e"), repr(out)
        assert "\\x1b]0;pwned" in out
        forged = sum(line.startswith("state:") for line in out.splitlines())
        assert forged == (1 if args == ("status",) else 0), "a forged line"


def test_tail_with_a_negative_count_is_an_argument_error(tmp_path) -> None:
    setup = make_setup(tmp_path, {"kind": "demo"})
    result = _cli(setup, "tail", "-n", "-5")
    assert result.returncode == 2
    assert "argument -n/--lines: must be 0 or more, got -5" in result.stderr


# ---------------------------------------------------------------------------- fuzz

_OPS = st.one_of(
    st.sampled_from(["status", "enroll_next", "enroll_files", "reload", "x", "", None, 3]),
    st.lists(st.sampled_from(["status", "reload"]), max_size=2),  # issue 20: Internal
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_REQUESTS = st.one_of(
    st.fixed_dictionaries(
        {"op": _OPS},
        optional={"n": _VALUES, "domain": _VALUES, "names": _VALUES, "paths": _VALUES},
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.text(max_size=100).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
)


def _fuzz(tmp_path: Path, examples: int) -> dict:
    """Random request lines against a running daemon: each gets one JSON answer, none an
    internal error, and the daemon never exits (a rare valid ``enroll_next`` may enroll)."""
    setup, proc = running_daemon(tmp_path)
    path = str(setup.run_dir / "control.sock")
    counts = {"trials": 0, "ok": 0, "refused": 0, "internal": 0}

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(lines=st.lists(_REQUESTS, min_size=1, max_size=4))
    def check(lines: list[bytes]) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(path)
            # an enroll_next that is valid waits for windows: hang up instead of waiting
            s.sendall(b"\n".join(lines) + b"\n")
            reader = s.makefile("rb")
            for _ in lines:
                try:
                    raw = reader.readline()
                except TimeoutError:
                    return  # a valid, waiting enroll_next: abandoned by hanging up
                reply = json.loads(raw)
                counts["trials"] += 1
                assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
                counts["ok" if reply["ok"] else "refused"] += 1
                if reply.get("type") == "Internal":
                    counts["internal"] += 1
                    raise AssertionError(reply)
        assert proc.poll() is None, setup.log()

    try:
        check()
        assert proc.poll() is None
        assert ControlClient(path).request("status")["state"] == "running"
        _stop(setup, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"fuzz: {counts}")
    return counts


def test_fuzzed_control_messages_get_answers_not_tracebacks(tmp_path) -> None:
    counts = _fuzz(tmp_path, examples=40)
    assert counts["trials"] >= 40 and counts["internal"] == 0


@pytest.mark.slow
def test_fuzzed_control_messages_long_campaign(tmp_path) -> None:
    counts = _fuzz(tmp_path, examples=1500)
    assert counts["trials"] >= 1500 and counts["internal"] == 0


def test_thread_count_stays_bounded_under_many_clients(tmp_path) -> None:
    hold = threading.Event()

    def blocking(request: dict, gone) -> dict:
        hold.wait(10)
        return {}

    with ControlServer(tmp_path / "c.sock", blocking, max_connections=4) as srv:
        before = threading.active_count()
        socks = []
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(srv.path))
            # a refused connection may be answered and closed before the request is sent
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(b'{"op": "status"}\n')
            socks.append(s)
        end = time.monotonic() + 10
        while srv.refused < 46 and time.monotonic() < end:  # 4 served, the rest refused
            time.sleep(0.01)
        assert srv.refused == 46 and srv.active == 4
        assert threading.active_count() - before <= 4
        hold.set()
        for s in socks:
            s.close()


def test_audio_is_read_from_a_passed_descriptor_under_the_client_given_name(tmp_path) -> None:
    from edgeasd.audio.io import iter_audio, read_audio
    from edgeasd.errors import AudioFileError

    path = write_normal(tmp_path / "a.wav", 2, seed=3)
    expected = read_audio(path, 16000).samples
    with open(path, "rb") as fh:
        fh.seek(100)  # a descriptor shares its offset with the sender: read from the start
        got = read_audio(fh, 16000, name="client/a.wav").samples
        np.testing.assert_array_equal(got, expected)
        streamed = np.concatenate(list(iter_audio(fh, 16000, name="client/a.wav")))
        np.testing.assert_array_equal(streamed, expected)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really audio")
    with open(junk, "rb") as fh, pytest.raises(AudioFileError, match=r"cannot read client/j\.wav"):
        read_audio(fh, 16000, name="client/j.wav")
