"""Permissions of the files and folders the agent creates: the one place they come from.

State, log and runtime files (bank, its lock and id mark, kept-audio sidecars,
``status.json``, ``alerts.jsonl``/``scores.jsonl``, the MQTT queue) are created ``0640``
(:data:`FILE_MODE`): the group is the operators' (``edgeasd`` under systemd, see
``systemd/README.md``), who may read the logs and status; nobody else may. Recordings of the
workplace (kept enrollment audio, staged or committed, and alert audio) are ``0600``
(:data:`AUDIO_MODE`): only the service's user. Folders are ``0750`` (:data:`DIR_MODE`), the
control socket ``0660`` (:data:`SOCKET_MODE`). Files meant for others say so: the systemd unit
is ``0644`` whatever the umask (:data:`WORLD_READABLE`); the Prometheus text file, reports and
data sets follow the umask (:data:`PUBLIC`).

These modes hold under any umask: files are created with them (a umask only removes bits)
and, where a library creates the file by name (libsndfile, SQLite), it is created here
first with the exact mode (:func:`create_file`) and narrowed with ``fchmod``. A file of our
own left wider by an older version is narrowed when it is opened again.
"""

from __future__ import annotations

import contextlib
import os

#: Mode of every state, log and runtime file the agent creates.
FILE_MODE = 0o640
#: Mode of the audio it keeps (enrollment audio, staged or committed; alert audio).
AUDIO_MODE = 0o600
#: Mode of the folders it creates (state, logs, kept audio).
DIR_MODE = 0o750
#: Mode of the control socket: the operators' group may connect.
SOCKET_MODE = 0o660
#: Mode of files others must read whatever the umask (the systemd unit, an ONNX export).
WORLD_READABLE = 0o644
#: Files that are the user's, not the agent's (the Prometheus text file node_exporter
#: reads, a report, a data set): ``0666`` less the umask, as :func:`open` gives.
PUBLIC = 0o666


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An ``opener=`` for :func:`open` that creates the file ``0640``.

    A file of our own that already exists with wider permissions (written by an older
    version) is narrowed to ``0640``; other users' files are left alone.

    Returns
    -------
    int
        The open file descriptor.
    """
    fd = os.open(path, flags, FILE_MODE)
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~FILE_MODE:
            os.fchmod(fd, st.st_mode & FILE_MODE)
    return fd


def narrow(fd: int, mode: int) -> None:
    """Narrow an open file of our own to at most ``mode`` (other users' files untouched)."""
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~mode:
            os.fchmod(fd, st.st_mode & mode)


def create_file(path: str | os.PathLike[str], mode: int) -> None:
    """Create ``path`` empty with ``mode`` (or narrow an existing one) for a library to open.

    For writers that open a file by name themselves (libsndfile, SQLite): opening an
    existing file for writing keeps its mode, so the file they fill has ``mode`` whatever
    the umask. Never through a symbolic link (``O_NOFOLLOW``: ``OSError`` ``ELOOP``).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        narrow(fd, mode)
    finally:
        os.close(fd)


def narrow_path(path: str | os.PathLike[str], mode: int) -> None:
    """Narrow an existing file of our own to at most ``mode``, never through a link.

    For files an older version left wider (kept audio written ``0644``); missing files,
    links and other users' files are left alone.
    """
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            narrow(fd, mode)
        finally:
            os.close(fd)
