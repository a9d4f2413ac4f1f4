"""Socket plumbing of the control protocol: request lines with passed descriptors.

:class:`RequestReader` splits a connection's byte stream into request lines and collects
the descriptors (``SCM_RIGHTS``) sent along with each; :func:`check_fds` refuses what a
daemon must not read (a pipe that could block it, a write-only descriptor);
:func:`peer_credentials` and :func:`peer_closed` tell who is on the other end and whether
it is still there. :mod:`edgeasd.agent.control.protocol` holds the protocol itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import struct
import time

from edgeasd.errors import ControlError

#: Largest request or response line accepted, in bytes.
MAX_LINE_BYTES = 1 << 20
#: Most descriptors one request may carry (``enroll_files``: one per file).
MAX_FDS = 64


class RequestReader:
    """Request lines of a connection, with the descriptors (``SCM_RIGHTS``) sent along."""

    def __init__(self, conn: socket.socket, idle_seconds: float | None = None) -> None:
        self.conn = conn
        self.idle_seconds = idle_seconds
        self.buffer = bytearray()
        self.fds: list[int] = []

    def _recv(self, deadline: float | None) -> tuple[bytes, list[int], int]:
        if deadline is not None:  # a whole request within idle_seconds, however it trickles
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("idle control connection")
            self.conn.settimeout(left)
        data, fds, flags, _ = socket.recv_fds(self.conn, 65536, MAX_FDS)
        return data, fds, flags

    def next_request(self) -> tuple[bytes | None, list[int]]:
        """The next line (without its newline; None at end of stream) and its descriptors.

        A line longer than :data:`MAX_LINE_BYTES` is returned as its first
        ``MAX_LINE_BYTES + 1`` bytes (refused by the caller); the rest is skipped.
        """
        idle = self.idle_seconds
        deadline = None if idle is None else time.monotonic() + idle
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE_BYTES:
                line = bytes(self.buffer[: MAX_LINE_BYTES + 1])
                self._skip_rest_of_line(deadline)
                return line, self._take_fds()
            data, fds, flags = self._recv(deadline)
            self.fds += fds
            if flags & socket.MSG_CTRUNC:  # more descriptors than MAX_FDS: refuse them all
                close_fds(self.fds)
                self.fds = [-1]
            if not data:
                close_fds(self._take_fds())
                return None, []
            self.buffer += data
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return line, self._take_fds()

    def _take_fds(self) -> list[int]:
        fds, self.fds = self.fds, []
        return fds

    def _skip_rest_of_line(self, deadline: float | None) -> None:
        self.buffer.clear()
        while True:
            data, fds, _ = self._recv(deadline)
            close_fds(fds)
            if not data:
                return
            if b"\n" in data:
                self.buffer += data.split(b"\n", 1)[1]
                return


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def check_fds(fds: list[int], names: list[str]) -> list[int]:
    """Refuse descriptors that are missing, too many, or not regular files open for reading."""
    if -1 in fds:
        raise ControlError(f"a request may carry at most {MAX_FDS} file descriptors")
    if len(fds) != len(names):
        raise ControlError(
            f"enroll_files names {len(names)} file(s) but carries {len(fds)} descriptor(s)",
            help="the client opens each file and passes it with the request (SCM_RIGHTS); "
            "use `edgeasd enroll FILE...`",
        )
    import fcntl

    for fd, name in zip(fds, names, strict=True):
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ControlError(f"{name} is not a regular file", help="pass a WAV or FLAC file")
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
            raise ControlError(f"{name} was passed without read access")
    return fds


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the connected process (``SO_PEERCRED``; -1s if unavailable)."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", raw)
    except (OSError, AttributeError, struct.error):
        return (-1, -1, -1)


def peer_closed(conn: socket.socket) -> bool:
    """Whether the client closed its end (readable with nothing to read)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
