"""Permissions of the files and folders the agent creates: private to its user and group.

The state, log and runtime files (bank, lock, kept-audio sidecars, ``status.json``,
``alerts.jsonl``/``scores.jsonl``) are created ``0640``; their folders ``0750``. The group is
the operators' (``edgeasd`` under systemd, see ``systemd/README.md``): they may read the
logs and status, nobody else may. The systemd unit's ``UMask=0027`` gives the same result
for anything else the process creates; these modes hold under any umask, since a umask can
only remove bits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

#: Mode of every state, log and runtime file the agent creates.
FILE_MODE = 0o640
#: Mode of the folders it creates (state, logs, kept audio).
DIR_MODE = 0o750


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
