"""JSON-lines event logs with size-capped rotation, and a reader that follows them.

A :class:`JsonlLog` appends one JSON object per line, flushed per line, and rotates
by size (``alerts.jsonl`` → ``alerts.jsonl.1`` → ... → ``.<backups>``, the oldest
deleted), so the logs never use more than about ``max_bytes * (backups + 1)``. A line
that cannot be written (a full disk: ENOSPC, EDQUOT, EIO...) is dropped and counted, the
part of it that reached the file is cut off again, so the file never ends in a partial
line, and one warning per episode goes to the journal; writing resumes when space
returns (:attr:`JsonlLog.health`). One
process writes a log; any number may read it. :func:`read_events` reads the rotated
files oldest first and, with ``follow=True``, keeps reading across rotations like
``tail -F``. Writer and reader live together: they share the rotation's file naming
(:func:`rotated`) and its line framing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgeasd.errors import InputError
from edgeasd.events import Record
from edgeasd.events import encode as encode_event
from edgeasd.filemode import DIR_MODE, private_opener

log = logging.getLogger(__name__)


def rotated(path: str | os.PathLike[str], i: int) -> Path:
    """The ``i``-th rotated file of ``path`` (``i = 0`` is ``path`` itself)."""
    path = Path(path)
    return path if i == 0 else path.with_name(f"{path.name}.{i}")


class JsonlLog:
    """An append-only JSON-lines file rotated by size.

    Parameters
    ----------
    path : path-like
        The live file; its folder is created if missing.
    max_bytes : int
        A line that would make the file larger than this rotates it first (a file
        always takes at least one line, however long).
    backups : int
        Rotated files kept (``0``: the file is truncated when full).
    fsync : bool
        ``os.fsync`` after every line (survives power loss; costs a disk write each).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = 10 * 2**20,
        backups: int = 5,
        *,
        fsync: bool = False,
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise InputError(f"need max_bytes >= 1 and backups >= 0, got {max_bytes}, {backups}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.backups = int(backups)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        self._fh = None
        self._size = 0
        self.dropped = 0  # lines lost to write errors since the log was created
        self.error: str | None = None  # the current episode's error (None: writing works)
        try:
            self._open()
        except OSError as exc:  # e.g. a full disk: the first write retries
            self._failed(exc)

    def _open(self) -> None:
        self._fh = open(self.path, "ab", buffering=0, opener=private_opener)
        self._size = os.fstat(self._fh.fileno()).st_size

    def write(self, event: Record) -> bool:
        """Append one event as a line and flush it to the OS (rotating first if full).

        Returns
        -------
        bool
            False when the line could not be written (it is dropped and counted in
            :attr:`dropped`; the file keeps only whole lines).
        """
        data = encode_event(event).encode("utf-8")
        try:
            if self._fh is None:
                self._open()
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self.rotate()
            written = self._fh.write(data)  # unbuffered: one write(2) per line
            if written != len(data):  # a short write: the disk filled up mid-line
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._size += len(data)
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            self._cut_partial()
            self.dropped += 1
            self._failed(exc)
            return False
        if self.error is not None:
            log.warning(
                "%s: writable again; %d line(s) were dropped meanwhile", self.path, self.dropped
            )
            self.error = None
        return True

    def emit(self, event: Record) -> None:
        """:meth:`write`, as an :class:`edgeasd.interfaces.Sink` (a dropped line is counted)."""
        self.write(event)

    def _cut_partial(self) -> None:
        """Truncate the file back to its last whole line (after a failed or short write)."""
        if self._fh is None:
            return
        try:
            if os.fstat(self._fh.fileno()).st_size > self._size:
                os.ftruncate(self._fh.fileno(), self._size)
        except OSError:  # cannot even truncate: reopen later, and measure the size then
            self.close()

    def _failed(self, exc: OSError) -> None:
        """Record a write error; warn once per episode (not once per dropped line)."""
        reason = exc.strerror or str(exc)
        if self.error is None:
            log.warning(
                "%s: cannot write (%s); events are dropped and counted until it works again",
                self.path,
                reason,
            )
        self.error = reason

    @property
    def health(self) -> dict[str, Any]:
        """``{"dropped": lines lost so far, "error": the current write error or None}``."""
        return {"dropped": self.dropped, "error": self.error}

    def rotate(self) -> None:
        """Shift ``path`` → ``.1`` → ... → ``.<backups>`` now and start an empty file."""
        self.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            rotated(self.path, self.backups).unlink(missing_ok=True)
            for i in range(self.backups - 1, -1, -1):
                src = rotated(self.path, i)
                if src.exists():
                    os.replace(src, rotated(self.path, i + 1))
        self._open()

    def flush(self) -> None:
        """Force the file's data to disk (``fsync``; an error is recorded, not raised)."""
        if self._fh is not None:
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                self._failed(exc)

    def close(self) -> None:
        """Close the file (a later :meth:`write` reopens it)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):  # nothing is buffered: no data lost here
                self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(line: bytes, path: Path) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        log.warning("skipping a malformed line in %s", path)
        return None
    return event if isinstance(event, dict) else None


def _read_lines(fh: Any, pending: bytearray) -> Iterator[bytes]:
    """Complete lines readable from ``fh`` now; a partial last line stays in ``pending``."""
    while True:
        chunk = fh.read(65536)
        if not chunk:
            return
        pending += chunk
        *lines, rest = bytes(pending).split(b"\n")
        pending[:] = rest
        yield from (line for line in lines if line.strip())


def _after_rotation(
    path: Path, fh: Any, pending: bytearray, live_ino: int
) -> Iterator[dict[str, Any]]:
    """Events the follower missed: the rest of its old file, then any newer rotated ones.

    If the writer rotated several times between two polls, the old file is now
    ``path.<i>`` with ``i > 1``; the files ``path.<i-1>`` ... ``path.1`` were written
    meanwhile and are read whole.
    """
    old_ino = os.fstat(fh.fileno()).st_ino
    if old_ino == live_ino:  # truncated in place: nothing of the old content is left
        return
    yield from (e for line in _read_lines(fh, pending) if (e := _parse(line, path)))
    pending.clear()
    i = 1
    while (candidate := rotated(path, i)).exists():
        try:
            if candidate.stat().st_ino == old_ino:
                break
        except FileNotFoundError:
            return
        i += 1
    # not found: the old file was deleted as the oldest backup; every rotated file is newer
    for j in range(i - 1, 0, -1):
        try:
            with open(rotated(path, j), "rb") as newer:
                yield from (e for line in newer if line.strip() if (e := _parse(line, path)))
        except FileNotFoundError:
            continue


def read_events(
    path: str | os.PathLike[str],
    follow: bool = False,
    *,
    last: int | None = None,
    poll_seconds: float = 0.25,
    stop: Callable[[], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of a rotated JSON-lines log, oldest first.

    Parameters
    ----------
    path : path-like
        The live log (rotated files ``path.1``, ``path.2``, ... are read first).
    follow : bool
        After the existing events, wait for new ones and keep going across rotations
        and truncations (until ``stop()`` is true or the consumer stops iterating).
    last : int, optional
        Yield only the last ``last`` existing events (then follow, if asked).
    poll_seconds : float
        How often to look for new data when following.
    stop : callable, optional
        Checked while waiting; the generator ends when it returns true.

    Yields
    ------
    dict
        One event per line; malformed lines are skipped with a warning.
    """
    path = Path(path)
    backups = []
    i = 1
    while rotated(path, i).exists():
        backups.append(rotated(path, i))
        i += 1
    existing: deque[dict[str, Any]] | list[dict[str, Any]]
    existing = deque(maxlen=last) if last is not None else []
    for old in reversed(backups):
        try:
            with open(old, "rb") as fh:
                existing.extend(e for line in fh if line.strip() if (e := _parse(line, old)))
        except FileNotFoundError:  # rotated away while we read
            continue
    fh = None
    pending = bytearray()
    try:
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            fh = None
        if fh is not None:
            existing.extend(e for line in _read_lines(fh, pending) if (e := _parse(line, path)))
        yield from existing
        if not follow:
            return
        while not (stop and stop()):
            if fh is not None:
                got = False
                for line in _read_lines(fh, pending):
                    if event := _parse(line, path):
                        got = True
                        yield event
                if got:
                    continue
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (
                fh is None or os.fstat(fh.fileno()).st_ino != st.st_ino or st.st_size < fh.tell()
            ):
                if fh is not None:  # rotated or truncated
                    yield from _after_rotation(path, fh, pending, st.st_ino)
                    fh.close()
                pending.clear()
                fh = open(path, "rb")
                continue
            time.sleep(poll_seconds)
    finally:
        if fh is not None:
            fh.close()
