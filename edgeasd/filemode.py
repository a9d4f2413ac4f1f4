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
import os

#: Mode of every state, log and runtime file the agent creates.
FILE_MODE = 0o640
#: Mode of the folders it creates (state, logs, kept audio).
DIR_MODE = 0o750


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
