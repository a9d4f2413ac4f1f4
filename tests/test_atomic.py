"""The one atomic writer: content, modes under a umask, nothing half-written or left over."""

from __future__ import annotations

import json
import os
import stat

import pytest

from edgeasd.atomic import PUBLIC, replacing, write_bytes_atomic, write_json_atomic
from edgeasd.filemode import FILE_MODE


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for the test, restore the previous one after."""
    previous = os.umask(0)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1, "when": tmp_path})
    assert json.loads(path.read_text()) == {"a": 1, "when": str(tmp_path)}
    write_bytes_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary left


def test_modes(tmp_path, umask):
    umask(0o022)
    write_bytes_atomic(tmp_path / "private", b"x")
    write_bytes_atomic(tmp_path / "public", b"x", PUBLIC)
    assert _mode(tmp_path / "private") == FILE_MODE == 0o640
    assert _mode(tmp_path / "public") == 0o644  # what open() gives under this umask
    umask(0o077)
    write_bytes_atomic(tmp_path / "private", b"y")
    write_bytes_atomic(tmp_path / "unit", b"y", 0o644, exact_mode=True, sync_dir=True)
    assert _mode(tmp_path / "private") == 0o600  # the umask may only remove bits
    assert _mode(tmp_path / "unit") == 0o644  # exact_mode: whatever the umask


def test_failure_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "bank"
    write_bytes_atomic(path, b"old")
    with pytest.raises(RuntimeError, match="writer died"), replacing(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("writer died")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "missing" / "x", b"data")


def test_replacing_gives_a_seekable_binary_file(tmp_path):
    """Library writers (soundfile, numpy, torch, wave) get a real, seekable file."""
    import wave

    path = tmp_path / "a.wav"
    with replacing(path, PUBLIC, fsync=False) as fh, wave.open(fh, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * 100)
    with wave.open(str(path), "rb") as r:
        assert (r.getnframes(), r.getframerate()) == (100, 8000)
