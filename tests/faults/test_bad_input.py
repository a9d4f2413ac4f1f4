"""Fault suite, bad input that still got through (issue 20): a huge ``score`` file, a FIFO,
a symbolic-link loop, a file name that drives the terminal.

Each test runs the real CLI as a subprocess on real files.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from e2e.harness import REPO, Setup, make_setup, write_normal
from support.rss import run_peak_rss

#: Resident memory ``edgeasd score`` may add for a long file over a short one, whatever the
#: long file's length: one read block (65536 frames), 16 windows of a batch and their rows
#: (measured: a 200 MB WAV adds under 5 MB; it added 800 MB when files were read whole).
MAX_SCORE_GROWTH_MB = 40


def _zeros_wav(path: Path, data_bytes: int, rate: int = 16000) -> Path:
    """A valid 16-bit mono WAV header announcing ``data_bytes``, then that many zero bytes.

    The zeros are a sparse file (``truncate``): a 2 GB file costs nothing to make.
    """
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)
    return path


def _enrolled(tmp_path: Path) -> Setup:
    setup = make_setup(tmp_path / "agent", {"kind": "file", "path": str(tmp_path / "x.wav")})
    files = [str(write_normal(tmp_path / f"n{i}.wav", 3, seed=i)) for i in range(2)]
    setup.cli("enroll", *files, check=True, timeout=120)
    return setup


def _score_peak_rss_mb(setup: Setup, file: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``edgeasd score FILE``; its peak resident memory in MB."""
    cmd = [sys.executable, "-m", "edgeasd", "score", "--config", str(setup.config), str(file)]
    done, peak = run_peak_rss(cmd, env=setup.env, cwd=REPO)
    return peak, done


def _score_growth(tmp_path: Path, data_bytes: int) -> float:
    setup = _enrolled(tmp_path)
    small = _zeros_wav(tmp_path / "small.wav", 2 * 16000 * 3)  # 3 s
    big = _zeros_wav(tmp_path / "big.wav", data_bytes)
    base, done = _score_peak_rss_mb(setup, small)
    assert done.returncode == 0, done.stderr
    peak, done = _score_peak_rss_mb(setup, big)
    assert done.returncode == 0, done.stderr
    windows = data_bytes // (2 * 16000)  # 1 s windows of the test model
    assert f" {windows} " in done.stdout and "no-signal" in done.stdout, done.stdout
    print(f"score: {base:.0f} MB peak for 3 s, {peak:.0f} MB for {data_bytes / 1e6:.0f} MB")
    return peak - base


def test_score_streams_a_large_file_in_bounded_memory(tmp_path) -> None:
    """200 MB of zeros after a valid header: read whole it cost 4x its size in memory."""
    growth = _score_growth(tmp_path, 200_000_000)
    assert growth < MAX_SCORE_GROWTH_MB


@pytest.mark.slow
def test_score_streams_a_2gb_file_in_bounded_memory(tmp_path) -> None:
    """The campaign's file: 2 GB of zeros after a valid header (8.4 GB resident before)."""
    growth = _score_growth(tmp_path, 2_000_000_000)
    assert growth < MAX_SCORE_GROWTH_MB


def _special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.wav"
    loop.symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(loop)
    return {
        "fifo": (fifo, "is a named pipe (FIFO), not an audio file"),
        "loop": (loop, "is a symbolic link loop"),
        "device": (Path("/dev/zero"), "is a character device, not an audio file"),
        "directory": (tmp_path, "is a directory, not an audio file"),
    }


@pytest.mark.parametrize("command", ["enroll", "score"])
def test_special_files_are_refused_by_name_without_blocking(tmp_path, command) -> None:
    """A FIFO hung ``enroll`` for ever in open(); a symlink loop printed a traceback."""
    setup = _enrolled(tmp_path) if command == "score" else None
    setup = setup or make_setup(tmp_path / "agent", {"kind": "file", "path": "x.wav"})
    for kind, (path, why) in _special_files(tmp_path).items():
        try:
            out = setup.cli(command, str(path), timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} blocked on the {kind}")
        assert out.returncode == 2, (kind, out.stdout, out.stderr)
        assert why in out.stderr and str(path) in out.stderr, (kind, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
    assert not (setup.state / "bank").exists() or command == "score"


def test_score_table_sanitizes_file_names(tmp_path) -> None:
    """A name with a newline and ANSI escapes broke the table and reached the terminal."""
    setup = _enrolled(tmp_path)
    evil = tmp_path / "a\n\x1b[2J\x1b]0;pwned\x07b.wav"
    write_normal(evil, 2, seed=9)
    out = setup.cli("score", str(evil), check=True)
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    rows = out.stdout.splitlines()
    assert len(rows) == 3, out.stdout  # threshold, header, one line for the file
    assert "\\x1b[2J" in rows[2] and "\\x0a" in rows[2]
    gone = setup.cli("score", str(evil) + "\x1b[31m")
    assert gone.returncode == 2 and "\x1b" not in gone.stderr and "\\x1b[31m" in gone.stderr
