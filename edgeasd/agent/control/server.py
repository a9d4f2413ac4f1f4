"""The daemon's end of the control socket: :class:`ControlServer`.

The protocol (requests, responses) is :mod:`edgeasd.agent.control.protocol`.

Limits (a local user must not be able to take the daemon down): at most
``max_connections`` connections are served at once, each by its own thread (so the threads
are bounded too); one past the cap gets a ``Busy`` answer and is closed at once. A
connection that sends no complete request for ``idle_seconds`` is closed. A request whose
client hung up before it was handled is dropped, and an enrollment whose client hangs up
while it waits is abandoned (nothing enrolled).

The server only knows the protocol: it validates requests and hands them to a handler
callable supplied by the daemon (which decides who touches the bank).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeasd.agent.control.protocol import BUSY_HELP, MUTATING, encode, parse_request
from edgeasd.agent.control.wire import (
    MAX_LINE_BYTES,
    RequestReader,
    check_fds,
    close_fds,
    peer_closed,
    peer_credentials,
)
from edgeasd.errors import ControlError, EdgeasdError
from edgeasd.filemode import SOCKET_MODE

log = logging.getLogger(__name__)

#: Permissions of the socket file: owner and group may connect, others not.
#: Seconds the accept loop waits after an unexpected error (doubling up to the maximum
#: while errors repeat, e.g. EMFILE: too many open files), so it never spins hot.
ACCEPT_BACKOFF = (0.05, 2.0)
#: Default cap on connections served at once. Each holds a thread and a descriptor; 32 keeps
#: the daemon far below the default ``ulimit -n 1024`` (2,000 idle clients measured against
#: it in tests/faults/test_socket.py) while operators' commands and scripts rarely hold more
#: than a handful at once.
MAX_CONNECTIONS = 32
#: Default seconds a connection may stay without sending a complete request (a client
#: writes its request line at once; 10 s is generous for a loaded edge device).
IDLE_SECONDS = 10.0

#: ``handler(request, gone) -> result``; ``gone()`` tells whether the client hung up.
Handler = Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]


def _error_response(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, EdgeasdError):
        return {"ok": False, "error": exc.message, "help": exc.help, "type": type(exc).__name__}
    log.exception("control request failed unexpectedly", exc_info=exc)
    return {"ok": False, "error": f"internal error: {exc!r}", "help": None, "type": "Internal"}


class ControlServer:
    """Serve control requests on a local socket, one thread per connection, at most
    ``max_connections`` at once.

    Parameters
    ----------
    path : path-like
        Where to create the socket. A stale socket file left by a killed daemon is replaced;
        a live one (another daemon answers) is an error.
    handler : callable
        ``handler(request, gone) -> result dict``, called in the connection's thread with a
        validated request. It may block (``enroll_next`` waits for live windows); while it
        does, ``gone()`` says whether the client has hung up (Ctrl-C), so that the request
        can be abandoned. Raising an :class:`EdgeasdError` sends an error response with its
        message and help. An ``enroll_files`` request has ``fds``: the received descriptors,
        one per name, each a regular file open for reading; the server owns them and closes
        them after the handler returns (the handler must not close them).
    max_connections : int
        Connections served at once (:data:`MAX_CONNECTIONS`); more get a ``Busy`` answer.
    idle_seconds : float
        A connection without a complete request for this long is closed (:data:`IDLE_SECONDS`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handler: Handler,
        max_connections: int = MAX_CONNECTIONS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.max_connections = int(max_connections)
        self.idle_seconds = float(idle_seconds)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.refused = 0  # connections answered "busy" so far

    @property
    def active(self) -> int:
        """Connections being served now."""
        return self.max_connections - self._slots._value

    def start(self) -> ControlServer:
        """Bind the socket (atomically, with mode 0660) and start accepting."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if _is_live(self.path):
                raise ControlError(
                    f"another edgeasd daemon already listens on {self.path}",
                    help="stop it first (systemctl stop edgeasd), or give this one another "
                    "paths.runtime_dir",
                )
            self.path.unlink()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, SOCKET_MODE)  # before it is reachable under its real name
            os.rename(tmp, self.path)
            sock.listen(16)
            sock.settimeout(0.2)
        except OSError as exc:
            sock.close()
            raise ControlError(
                f"cannot create the control socket {self.path}: {exc.strerror}",
                help="check that the runtime directory is writable by the service user",
            ) from None
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        """Accept connections until :meth:`close`, surviving unexpected accept errors.

        An error other than the poll timeout (e.g. EMFILE) is logged with its traceback
        and retried after a back-off (:data:`ACCEPT_BACKOFF`), so that the socket keeps
        answering once the cause goes away instead of going silent while the daemon runs.
        A connection past ``max_connections`` is answered ``Busy`` and closed.
        """
        sock = self._sock  # close() sets self._sock to None; closing it ends accept()
        assert sock is not None
        delay = ACCEPT_BACKOFF[0]
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception(
                    "control socket %s: accepting a connection failed; retrying in %g s",
                    self.path,
                    delay,
                )
                if self._stop.wait(delay):
                    return
                delay = min(2 * delay, ACCEPT_BACKOFF[1])
                continue
            delay = ACCEPT_BACKOFF[0]
            if not self._slots.acquire(blocking=False):
                self._refuse(conn)
                continue
            try:
                threading.Thread(
                    target=self._serve, args=(conn,), name="control-conn", daemon=True
                ).start()
            except RuntimeError:  # cannot start a thread (resource limit)
                self._slots.release()
                self._refuse(conn)

    def _refuse(self, conn: socket.socket) -> None:
        """Answer ``Busy`` without blocking and close (the accept loop never waits)."""
        if self.refused % 100 == 0:
            log.warning(
                "control socket %s: %d connections already served; refusing more "
                "(%d refused so far)",
                self.path,
                self.max_connections,
                self.refused + 1,
            )
        self.refused += 1
        response = {
            "ok": False,
            "error": f"the daemon is busy: {self.max_connections} control connections are open",
            "help": BUSY_HELP,
            "type": "Busy",
        }
        with conn:
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.send(encode(response))

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                reader = RequestReader(conn, self.idle_seconds)
                peer = peer_credentials(conn)
                while not self._stop.is_set():
                    try:
                        line, fds = reader.next_request()
                    except TimeoutError:  # idle: free the slot
                        return
                    except OSError:  # the client reset the connection
                        return
                    if line is None:
                        return
                    try:
                        response = self._answer(conn, line, fds, peer)
                    finally:
                        close_fds(fds)
                    if response is None:  # the client is gone: nothing to answer
                        return
                    try:
                        conn.settimeout(self.idle_seconds)  # a client that never reads
                        conn.sendall(encode(response))
                    except OSError:  # the client went away (e.g. Ctrl-C while waiting)
                        return
        finally:
            self._slots.release()

    def _answer(
        self, conn: socket.socket, line: bytes, fds: list[int], peer: tuple[int, int, int]
    ) -> dict[str, Any] | None:
        """The response to one request line (None: the client hung up, request dropped)."""
        try:
            if len(line) > MAX_LINE_BYTES:
                raise ControlError(f"control request longer than {MAX_LINE_BYTES} bytes")
            request = parse_request(line)
            op = request["op"]
            if op in MUTATING:
                log.info("control request %r from pid %d uid %d", op, peer[0], peer[1])
                if peer_closed(conn):
                    log.info("control request %r dropped: its client hung up", op)
                    return None
            if op == "enroll_files":
                request["fds"] = check_fds(fds, request["names"])
            elif fds:
                raise ControlError(f"request {op!r} takes no file descriptors")
            conn.settimeout(None)  # the handler may take long (enroll --next)
            result = self.handler(request, lambda: peer_closed(conn))
            return {"ok": True, "result": result}
        except Exception as exc:
            return _error_response(exc)

    def close(self) -> None:
        """Stop accepting and remove the socket file."""
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
