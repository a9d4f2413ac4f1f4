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
import errno
import os
import stat

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
    """An ``opener=`` for :func:`open` that creates the file ``0640``, never through a link.

    The last component is opened ``O_NOFOLLOW``: a symbolic link planted under the file's
    name (``alerts.jsonl -> /etc/passwd``) is refused, never appended to or narrowed (issue
    20). A file of our own that already exists with wider permissions (written by an older
    version) is narrowed to ``0640``; other users' files, and files with other hard links
    (another name of a file elsewhere), are left alone.

    Returns
    -------
    int
        The open file descriptor.

    Raises
    ------
    OSError
        ``ELOOP`` for a symbolic link; ``EPERM`` for a file with other hard links, or
        something that is neither a regular file nor a character device (``/dev/null``).
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, FILE_MODE)
    try:
        st = os.fstat(fd)
        regular = stat.S_ISREG(st.st_mode)
        if (regular and st.st_nlink != 1) or not (regular or stat.S_ISCHR(st.st_mode)):
            what = "other hard links" if regular else "a FIFO, socket, folder or block device"
            raise OSError(errno.EPERM, f"refused: {what}", os.fspath(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    if not regular:  # a character device (/dev/null): used as it is, never changed
        return fd
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~FILE_MODE:
        with contextlib.suppress(OSError):
            os.fchmod(fd, st.st_mode & FILE_MODE)
    return fd


def shared_writable(path: str | os.PathLike[str]) -> str | None:
    """Who besides its owner may write in the folder ``path``: ``"everyone"``, ``"its group"``.

    A folder others can write in lets them plant links and files under the agent's names
    (issue 20): the state and log folders must not be one. None when only the owner may (or
    the folder does not exist yet: it will be created ``DIR_MODE``).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & stat.S_IWOTH:
        return "everyone"
    if mode & stat.S_IWGRP:
        return "its group"
    return None


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
