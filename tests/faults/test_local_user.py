"""Fault suite, a local user against the agent's host (issue 20).

The agent often runs as root. A second, unprivileged user -- a real one, created for the
test (``other_user``) -- must not be able to make it write, narrow or read what it should
not: links planted under its file names, folders others may write in, a socket of theirs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from e2e.harness import make_setup, write_normal

from edgeasd.errors import BankError
from edgeasd.scoring.fileio import locked


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _as(user: tuple[str, int, int], *cmd: str) -> subprocess.CompletedProcess:
    _, uid, gid = user
    return subprocess.run(
        list(cmd), user=uid, group=gid, extra_groups=[], capture_output=True, text=True
    )


def test_planted_bank_lock_link_is_refused_and_its_target_untouched(tmp_path) -> None:
    """``bank.lock -> /etc/passwd`` made the root agent fchmod the target to 0640."""
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0::/root:/bin/sh\n")
    victim.chmod(0o644)
    (state / "bank.lock").symlink_to(victim)
    link = r"bank\.lock: it is a symbolic link"
    with pytest.raises(BankError, match=link), locked(state / "bank"):
        pass
    assert _mode(victim) == 0o644 and victim.read_text().startswith("root:")


def test_bank_lock_with_other_hard_links_is_not_narrowed(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    victim = tmp_path / "shadow-like"
    victim.write_text("x")
    victim.chmod(0o644)
    os.link(victim, state / "bank.lock")
    with pytest.raises(BankError, match="other hard links"), locked(state / "bank"):
        pass
    assert _mode(victim) == 0o644


def test_state_folder_others_can_write_is_refused(other_user, open_dir) -> None:
    """Another user plants ``bank.lock`` in a world-writable state folder: root refuses it."""
    setup = make_setup(open_dir / "agent", {"kind": "file", "path": "x.wav"})
    setup.state.mkdir(mode=0o777)
    setup.state.chmod(0o777)
    victim = open_dir / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    planted = _as(other_user, "ln", "-s", str(victim), str(setup.state / "bank.lock"))
    assert planted.returncode == 0, planted.stderr
    good = write_normal(open_dir / "n.wav", 3, seed=1)
    out = setup.cli("enroll", str(good), timeout=120)
    assert out.returncode == 2, out.stdout
    assert f"{setup.state} is writable by everyone" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert _mode(victim) == 0o644 and victim.read_text() == "precious\n"
    assert not (setup.state / "bank").exists()


def test_group_writable_log_folder_is_refused(open_dir) -> None:
    """A log folder its group may write in: links to any file could be planted there."""
    setup = make_setup(open_dir / "agent", {"kind": "file", "path": "x.wav"})
    setup.logs.mkdir(mode=0o770)
    setup.logs.chmod(0o770)
    out = setup.cli("doctor", timeout=120)
    assert "is writable by its group" in out.stdout + out.stderr, out.stdout + out.stderr


#: A fake daemon run as the other user: listens on SOCK, writes what it receives (bytes and
#: descriptors) to LOOT, answers a forged status, and marks READY once listening.
_FAKE_DAEMON = r"""
import array, json, os, socket, sys
sock_path, loot, ready = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sock_path)
os.chmod(sock_path, 0o666)
s.listen(4)
open(ready, "w").close()
s.settimeout(30)
for _ in range(4):
    try:
        conn, _ = s.accept()
    except TimeoutError:
        sys.exit(0)
    conn.settimeout(5)
    try:
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 8)
    except OSError:
        continue
    stolen = b"".join(os.read(fd, 100) for fd in fds)
    if msg or fds:
        with open(loot, "ab") as fh:
            fh.write(msg + b"\n--fds--\n" + stolen)
    forged = {"ok": True, "result": {"state": "running", "forged": True}}
    try:
        conn.sendall(json.dumps(forged).encode() + b"\n")
    except OSError:
        pass
"""


def _fake_daemon(other_user, run_dir: Path, loot_dir: Path):
    ready = loot_dir / "ready"
    _, uid, gid = other_user
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 the other user may run")
    proc = subprocess.Popen(
        [
            python,
            "-c",
            _FAKE_DAEMON,
            str(run_dir / "control.sock"),
            str(loot_dir / "loot"),
            str(ready),
        ],
        user=uid,
        group=gid,
        extra_groups=[],
    )
    for _ in range(200):
        if ready.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the fake daemon did not start")


def _setup_with_run_dir(open_dir: Path, run_dir: Path | None = None):
    paths = {} if run_dir is None else {"paths": {"runtime_dir": str(run_dir)}}
    setup = make_setup(open_dir / "agent", {"kind": "file", "path": "x.wav"}, **paths)
    loot = open_dir / "loot"
    loot.mkdir(mode=0o777)
    loot.chmod(0o777)
    secret = open_dir / "secret.wav"
    write_normal(secret, 3, seed=4)
    secret.chmod(0o600)  # root's private recording
    return setup, loot, secret


def test_client_refuses_a_runtime_folder_of_another_user(other_user, open_dir) -> None:
    """``/tmp/edgeasd-0`` made by another user: a root ``enroll`` sent them its open files."""
    tmp = open_dir / "tmp"  # a /tmp: everyone may create folders in it
    tmp.mkdir()
    tmp.chmod(0o1777)
    run_dir = tmp / "edgeasd-0"
    made = _as(other_user, "mkdir", "-m", "0755", str(run_dir))
    assert made.returncode == 0, made.stderr
    setup, loot, secret = _setup_with_run_dir(open_dir, run_dir)
    _, uid, _ = other_user
    fake = _fake_daemon(other_user, run_dir, loot)
    try:
        for args in (("enroll", str(secret)), ("status",)):
            out = setup.cli(*args, timeout=60)
            assert out.returncode != 0, (args, out.stdout)
            assert f"belongs to another user (uid {uid})" in out.stderr, out.stderr
            assert "forged" not in out.stdout and "Traceback" not in out.stderr
        assert not (loot / "loot").exists()  # nothing was sent
    finally:
        fake.kill()
        fake.wait()


def test_client_refuses_a_socket_whose_peer_is_another_user(other_user, open_dir) -> None:
    """A root-owned folder, but the listener is someone else (``SO_PEERCRED``): refused."""
    setup, loot, secret = _setup_with_run_dir(open_dir)
    _, uid, gid = other_user
    setup.run_dir.mkdir(mode=0o755)
    os.chown(setup.run_dir, uid, gid)
    fake = _fake_daemon(other_user, setup.run_dir, loot)
    os.chown(setup.run_dir, 0, 0)  # the folder is root's again; the listener stays theirs
    try:
        for args in (("enroll", str(secret)), ("status",)):
            out = setup.cli(*args, timeout=60)
            assert out.returncode != 0, (args, out.stdout)
            assert f"is served by another user (uid {uid})" in out.stderr, out.stderr
            assert "forged" not in out.stdout and "Traceback" not in out.stderr
        sent = (loot / "loot").read_bytes() if (loot / "loot").exists() else b""
        assert b'"op"' not in sent and not sent.endswith(b"RIFF"), sent[:200]
    finally:
        fake.kill()
        fake.wait()


@pytest.mark.parametrize("name", ["alerts.jsonl", "scores.jsonl"])
def test_planted_log_link_is_refused_and_its_target_untouched(tmp_path, name) -> None:
    """``alerts.jsonl -> /etc/passwd``: the root daemon appended alerts and fchmod'ed it."""
    from edgeasd.agent.alerts.event_log import JsonlLog

    logs = tmp_path / "log"
    logs.mkdir(mode=0o750)
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0::/root:/bin/sh\n")
    victim.chmod(0o644)
    (logs / name).symlink_to(victim)
    log = JsonlLog(logs / name)
    log.write({"time": "2026-12-07T12:00:00Z", "event": "alert", "score": 9.0})
    assert victim.read_text() == "root:x:0:0::/root:/bin/sh\n" and _mode(victim) == 0o644


@pytest.mark.parametrize("how", ["the folder", "a link to it"])
def test_world_writable_runtime_folder_is_refused_never_chmoded(tmp_path, how) -> None:
    """``runtime_dir: /tmp`` under root became 0750: the sticky bit lost, users locked out."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    run_dir = shared if how == "the folder" else tmp_path / "run-link"
    if how != "the folder":
        run_dir.symlink_to(shared)  # Path.chmod followed it
    setup = make_setup(
        tmp_path / "agent", {"kind": "file", "path": "x.wav"}, paths={"runtime_dir": str(run_dir)}
    )
    out = setup.cli("doctor", timeout=120)
    assert f"{run_dir} is writable by everyone" in out.stdout + out.stderr, out.stdout
    assert _mode(shared) == 0o1777
