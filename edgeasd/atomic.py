"""The one atomic file writer: a temporary file next to the target, renamed over it.

A reader (the daemon, ``edgeasd status``, node_exporter, systemd) sees the old content or
the new, never half of it; a crash leaves the old file and at most a stray temporary
(``.<name>.<pid>.<random>.tmp``, in the same folder so that the rename is atomic).

With ``fsync`` the data reaches the disk before the rename, so a power cut cannot leave
an empty or truncated file under the target's name; with ``sync_dir`` the rename itself
is made durable too (the folder is fsynced). Modes follow :mod:`edgeasd.filemode`: state
files are created ``0640`` (the umask may only remove bits); ``exact_mode`` sets the mode
whatever the umask (files others must read, e.g. a systemd unit).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from edgeasd.filemode import FILE_MODE, PUBLIC

__all__ = ["PUBLIC", "replacing", "temp_path", "write_bytes_atomic", "write_json_atomic"]


def temp_path(path: Path) -> Path:
    """A fresh temporary name next to ``path`` (unique per process and call)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def replacing(
    path: str | os.PathLike[str],
    mode: int = FILE_MODE,
    *,
    fsync: bool = True,
    sync_dir: bool = False,
    exact_mode: bool = False,
) -> Iterator[BinaryIO]:
    """A binary file to write; on a clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and the exception propagates; ``path``
    is untouched.

    Parameters
    ----------
    path : path-like
        The target; its folder must exist.
    mode : int
        Permission bits of the new file (default ``0640``, :data:`edgeasd.filemode.FILE_MODE`);
        the umask applies unless ``exact_mode``.
    fsync : bool
        Flush the data to the disk before the rename.
    sync_dir : bool
        Also fsync the folder after the rename (the new name survives a power cut).
    exact_mode : bool
        Set ``mode`` exactly, whatever the umask.

    Yields
    ------
    BinaryIO
        The open temporary file.
    """
    path = Path(path)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if exact_mode:
                os.fchmod(fh.fileno(), mode)
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_bytes_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    mode: int = FILE_MODE,
    fsync: bool = True,
    *,
    sync_dir: bool = False,
    exact_mode: bool = False,
) -> None:
    """Replace ``path`` by ``data`` atomically (see :func:`replacing` for the options).

    Raises
    ------
    OSError
        The folder is missing or not writable, or the disk is full (``path`` unchanged).
    """
    with replacing(path, mode, fsync=fsync, sync_dir=sync_dir, exact_mode=exact_mode) as fh:
        fh.write(data)


def write_json_atomic(
    path: str | os.PathLike[str], obj: Any, fsync: bool = False, mode: int = FILE_MODE
) -> None:
    """Replace ``path`` by ``obj`` as JSON (non-JSON values as ``str``), atomically.

    ``fsync`` defaults to False: ``status.json`` is rewritten every few seconds and a lost
    snapshot is rewritten by the next; records that must survive a power cut (the kept-audio
    and alert-audio sidecars) pass ``fsync=True``.
    """
    write_bytes_atomic(path, json.dumps(obj, default=str).encode("utf-8"), mode, fsync)
