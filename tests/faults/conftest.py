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
