"""File-level primitives of the bank file: the write lock, atomic replace, fingerprint.

Writers hold an exclusive ``fcntl.flock`` on the sibling ``<file>.lock``; readers need
no lock. The lock is re-entrant within a process, so saving inside ``with locked(path):``
does not deadlock. Saving is atomic: the bytes go to a temporary file in the same
directory, which is fsync'ed, renamed over the target (``os.replace``), and the
directory is fsync'ed. Nothing here knows what a bank is (:mod:`edgeasd.scoring.store`
does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgeasd.atomic import write_bytes_atomic
from edgeasd.errors import BankError, BankLockedError
from edgeasd.filemode import FILE_MODE, private_opener, shared_writable

_held: dict[str, list] = {}  # realpath of the lock file -> [fd, depth]
_held_guard = threading.Lock()


def lock_path(path: str | Path) -> Path:
    """The lock file guarding ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = 10.0) -> Iterator[Path]:
    """Hold the exclusive write lock of the bank file ``path``.

    Parameters
    ----------
    path : str or Path
        The bank file (it need not exist yet; its directory must).
    timeout : float
        Seconds to wait for another process to release the lock.

    Yields
    ------
    Path
        The bank file path.

    Raises
    ------
    BankLockedError
        Another process still holds the lock after ``timeout`` seconds.
    """
    lp = lock_path(path)
    key = os.path.realpath(lp)
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            fd = None
        else:
            fd = _acquire(lp, timeout)
            _held[key] = [fd, 1]
    try:
        yield Path(path)
    finally:
        with _held_guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fcntl.flock(_held[key][0], fcntl.LOCK_UN)
                os.close(_held[key][0])
                del _held[key]


def _acquire(lp: Path, timeout: float) -> int:
    folder = lp.parent if str(lp.parent) else Path(".")
    who = shared_writable(folder)
    if who is not None:  # they could plant bank.lock -> /etc/passwd (issue 20)
        raise BankError(
            f"the bank's folder {folder} is writable by {who}: refusing to use it",
            help=f"make it private to the agent (`chmod go-w {folder}`), or move the state "
            "folder (paths.state_dir) to one of the agent's own",
        )
    try:  # O_NOFOLLOW: a link planted as the lock is refused, its target never touched
        fd = private_opener(lp, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise BankError(
            f"cannot open the bank lock file {lp}: {why}",
            help="check that the bank's directory exists and is writable; remove anything "
            "but a plain file under the lock's name",
        ) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                os.close(fd)
                raise BankLockedError(
                    f"the bank {lp.with_suffix('')} is locked by another process ({lp})",
                    help="wait for the other edgeasd command to finish, or send the change "
                    "to the running daemon (edgeasd enroll talks to it when it runs)",
                ) from None
            time.sleep(0.02)


def fingerprint(path: str | Path) -> bytes:
    """The stored checksum of a bank file (changes with every save), 32 bytes."""
    with open(path, "rb") as f:
        f.seek(-32, os.SEEK_END)
        return f.read(32)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably (temp, fsync, rename, fsync dir).

    The writing is :func:`edgeasd.atomic.write_bytes_atomic` (the project's one atomic
    writer); this adds the bank's error and the cleanup of temporary files that crashed
    writers left (the caller holds the bank's write lock, so no live writer owns one).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    stale_names = (f".{path.name}.*.tmp", f".{path.name}.tmp-*")  # the second: older versions
    for stale in [p for pattern in stale_names for p in directory.glob(pattern)]:
        with contextlib.suppress(OSError):  # left by crashed writers
            stale.unlink()
    try:
        write_bytes_atomic(path, data, FILE_MODE, fsync=True, sync_dir=True)
    except OSError as exc:
        raise BankError(
            f"cannot write the bank file {path}: {exc.strerror}",
            help="check free disk space and permissions of the directory",
        ) from None
