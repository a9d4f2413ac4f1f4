"""Fixtures of the fault suite: small real file systems that can be filled up."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.fixture
def small_fs(tmp_path) -> Iterator:
    """``small_fs(name, size="256k") -> Path``: a tiny tmpfs (needs root; skips without)."""
    mounted: list[Path] = []

    def make(name: str, size: str = "256k") -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, size):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        chunk = b"\0" * 65536
        while True:
            try:
                fh.write(chunk)
            except OSError:
                break
        while True:  # the last partial block
            try:
                if not fh.write(b"\0"):
                    break
            except OSError:
                break
    return filler


@pytest.fixture
def other_user() -> Iterator:
    """A real second local user, created for the test (needs root; skips without).

    Yields ``(name, uid, gid)``; the user is deleted afterwards. Run code as them with
    ``subprocess.run(..., user=uid, group=gid, extra_groups=[])``.
    """
    import os
    import pwd
    import secrets
    import shutil

    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("creating a second local user needs root and useradd")
    name = f"eafault{secrets.token_hex(3)}"
    made = subprocess.run(
        ["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        entry = pwd.getpwnam(name)
        yield name, entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh folder under the system's temporary folder that every user can traverse.

    (pytest's ``tmp_path`` sits below a 0700 folder: another user could not reach it.)
    """
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="edgeasd-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
