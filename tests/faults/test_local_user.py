"""Fault suite, a local user against the agent's host (issue 20).

The agent often runs as root. A second, unprivileged user -- a real one, created for the
test (``other_user``) -- must not be able to make it write, narrow or read what it should
not: links planted under its file names, folders others may write in, a socket of theirs.
"""

from __future__ import annotations

import os
import stat
import subprocess
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


@pytest.mark.xfail(strict=True, reason="the log folder check comes with paths.ensure (agent/)")
def test_group_writable_log_folder_is_refused(open_dir) -> None:
    """A log folder its group may write in: links to any file could be planted there."""
    setup = make_setup(open_dir / "agent", {"kind": "file", "path": "x.wav"})
    setup.logs.mkdir(mode=0o770)
    setup.logs.chmod(0o770)
    out = setup.cli("doctor", timeout=120)
    assert "is writable by its group" in out.stdout + out.stderr, out.stdout + out.stderr
