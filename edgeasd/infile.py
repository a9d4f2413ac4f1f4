"""A file named by a user (an audio file, a configuration), opened without blocking.

``open()`` of a named pipe (FIFO) blocks until a writer appears, so ``edgeasd enroll
some.fifo`` used to hang for ever; a device node may act on being opened (a tape rewinds);
a symbolic-link loop raised a traceback. :func:`open_regular` looks at the name first
(:func:`os.stat`, which follows links but opens nothing), refuses anything that is not a
regular file by what it is, then opens it ``O_NONBLOCK`` and checks the open descriptor
again (the name may have been replaced in between). Every refusal is an
:class:`~edgeasd.errors.EdgeasdError` (``AudioFileError`` unless the caller names another)
naming the file and what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from edgeasd.errors import AudioFileError, EdgeasdError

#: What a non-regular file is, in words, by its ``S_IFMT`` type.
_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


_AUDIO_HELP = (
    "pass regular WAV or FLAC files (record a stream to a file first, e.g. "
    "`arecord -d 60 -f S16_LE -r 16000 out.wav`)"
)


def _refuse_kind(mode: int, label: str, what: str, error: type[EdgeasdError]) -> None:
    if stat.S_ISREG(mode):
        return
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise error(
        f"{label} is {kind}, not {what}",
        help=_AUDIO_HELP if error is AudioFileError else "pass a regular file",
    )


def _open_error(exc: OSError, label: str, what: str, error: type[EdgeasdError]) -> EdgeasdError:
    if exc.errno == errno.ENOENT:
        return error(f"{what} not found: {label}", help="check the path")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return error(
            f"permission denied reading {label}",
            help="make the file readable by this user (e.g. `chmod o+r FILE`, or add the "
            "user to the file's group)",
        )
    if exc.errno == errno.ELOOP:
        return error(
            f"{label} is a symbolic link loop (too many levels of symbolic links)",
            help="point the link at the recording itself (`ls -l` shows where it points)",
        )
    if exc.errno == errno.ENAMETOOLONG:
        return error(f"the file name is too long: {label}", help="check the path")
    if exc.errno == errno.ENOTDIR:
        return error(
            f"{what} not found: {label} (a part of the path is not a folder)",
            help="check the path",
        )
    return error(f"cannot open {label}: {exc.strerror or exc}", help="check the path")


def open_regular(
    path: str | os.PathLike[str],
    label: str | None = None,
    what: str = "",
    error: type[EdgeasdError] = AudioFileError,
) -> int:
    """Open a regular file for reading without ever blocking; refuse anything else.

    Parameters
    ----------
    path : path-like
        The file; symbolic links are followed (a loop is refused by name).
    label : str, optional
        How messages name it (default: the path).
    what : str
        What the file should be, for messages (default ``"an audio file"``).
    error : type
        The :class:`~edgeasd.errors.EdgeasdError` subclass raised.

    Returns
    -------
    int
        An open, blocking, close-on-exec descriptor of a regular file; the caller closes it.

    Raises
    ------
    EdgeasdError
        ``error``: missing, unreadable, a symbolic-link loop, a name too long, or not a regular
        file (directory, FIFO, device, socket) -- the last refused before it is opened.
    """
    label = os.fspath(path) if label is None else label
    what = what or "an audio file"
    noun = what.removeprefix("an ").removeprefix("a ")
    try:
        before = os.stat(path)  # opens nothing: a FIFO or a device is refused unopened
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError):  # an embedded NUL byte
            raise error(
                f"the file name {label!r} holds a NUL byte", help="check the path"
            ) from None
        raise _open_error(exc, label, noun, error) from None
    _refuse_kind(before.st_mode, label, what, error)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _open_error(exc, label, noun, error) from None
    try:
        _refuse_kind(os.fstat(fd).st_mode, label, what, error)  # replaced since the stat
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd
