"""The daemon's local control socket: JSON lines over an ``AF_UNIX`` stream socket.

The socket lives at ``<runtime_dir>/control.sock`` with permissions ``0660`` (owner and
group, i.e. the ``edgeasd`` service user and the operators added to its group). There is no
network port. Each request is one JSON object on one line, each response one JSON object on
one line; a connection may carry several requests in turn.

Requests (``op`` plus parameters)::

    {"op": "status"}
    {"op": "enroll_next", "n": 5, "domain": "target"}
    {"op": "enroll_files", "paths": ["/abs/a.wav", ...], "domain": "target"}
    {"op": "reload"}

Responses::

    {"ok": true, "result": {...}}
    {"ok": false, "error": "what is wrong", "help": "what to do", "type": "BankError"}

This module only knows the protocol: :class:`ControlServer` validates requests and hands them
to a handler callable supplied by the daemon (which decides who touches the bank), and
:class:`ControlClient` sends requests and turns error responses back into
:class:`~edgeasd.errors.ControlError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeasd.errors import ControlError, EdgeasdError

log = logging.getLogger(__name__)

#: Largest request or response line accepted, in bytes.
MAX_LINE_BYTES = 1 << 20
#: Permissions of the socket file: owner and group may connect, others not.
SOCKET_MODE = 0o660
#: Seconds the accept loop waits after an unexpected error (doubling up to the maximum
#: while errors repeat, e.g. EMFILE: too many open files), so it never spins hot.
ACCEPT_BACKOFF = (0.05, 2.0)
#: Parameters each request takes, with their types.
REQUESTS: dict[str, dict[str, type]] = {
    "status": {},
    "enroll_next": {"n": int, "domain": str},
    "enroll_files": {"paths": list, "domain": str},
    "reload": {},
}

#: ``handler(request, gone) -> result``; ``gone()`` tells whether the client hung up.
Handler = Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]


class DaemonNotRunning(ControlError):
    """No daemon listens on the control socket (missing file or connection refused)."""


@dataclass
class Command:
    """A request handed from a control thread to the thread that owns the bank.

    The control thread puts it on a queue and blocks in :meth:`wait`; the owner calls
    :meth:`finish` with the result or the error.

    Attributes
    ----------
    kind : str
        ``"enroll_next"``, ``"commit"`` or ``"reload"``.
    payload : dict
        The request's parameters (``n``, ``domain``; ``batches``).
    windows : list of edgeasd.audio.windower.Window
        Windows collected so far (``enroll_next``), with their start times.
    abandoned : bool
        The client hung up before the command started or finished: the owner drops it
        (nothing of it is enrolled unless its commit had already begun).
    """

    kind: str
    payload: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    windows: list[Any] = field(default_factory=list)
    abandoned: bool = False

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None):
        """Complete the command (wakes :meth:`wait`)."""
        self.result, self.error = result, error
        self.done.set()

    def wait(self) -> dict[str, Any]:
        """Block until finished; return the result or raise the error."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def drain(commands: queue.Queue[Command]) -> list[Command]:
    """Take every command queued so far, without blocking."""
    out = []
    while True:
        try:
            out.append(commands.get_nowait())
        except queue.Empty:
            return out


def parse_request(line: bytes | str) -> dict[str, Any]:
    """Decode and validate one request line.

    Parameters
    ----------
    line : bytes or str
        One JSON object (trailing newline allowed).

    Returns
    -------
    dict
        The request with ``op`` and exactly the parameters that ``op`` takes.

    Raises
    ------
    ControlError
        Not JSON, not an object, unknown ``op``, missing, unknown or mistyped parameters.
    """
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"control request is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ControlError("control request must be a JSON object")
    op = request.get("op")
    if op not in REQUESTS:
        raise ControlError(
            f"unknown control request op {op!r}", help=f"known ops: {', '.join(REQUESTS)}"
        )
    spec = REQUESTS[op]
    extra = set(request) - set(spec) - {"op"}
    if extra:
        raise ControlError(f"request {op!r} takes no parameter(s) {sorted(extra)}")
    for key, kind in spec.items():
        value = request.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ControlError(f"request {op!r} needs parameter {key!r} of type {kind.__name__}")
    if op == "enroll_next" and request["n"] < 1:
        raise ControlError(f"enroll_next needs n >= 1, got {request['n']}")
    if op == "enroll_files":
        paths = request["paths"]
        if not paths or not all(isinstance(p, str) for p in paths):
            raise ControlError("enroll_files needs a non-empty list of path strings")
    return request


def _error_response(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, EdgeasdError):
        return {"ok": False, "error": exc.message, "help": exc.help, "type": type(exc).__name__}
    log.exception("control request failed unexpectedly", exc_info=exc)
    return {"ok": False, "error": f"internal error: {exc!r}", "help": None, "type": "Internal"}


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


class ControlServer:
    """Serve control requests on a local socket, one thread per connection.

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
        message and help.
    """

    def __init__(self, path: str | os.PathLike[str], handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

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
            conn.settimeout(None)
            threading.Thread(
                target=self._serve, args=(conn,), name="control-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while not self._stop.is_set():
                try:
                    line = reader.readline(MAX_LINE_BYTES + 1)
                except OSError:  # the client reset the connection
                    return
                if not line:
                    return
                try:
                    if len(line) > MAX_LINE_BYTES:
                        raise ControlError(f"control request longer than {MAX_LINE_BYTES} bytes")
                    request = parse_request(line)
                    result = self.handler(request, lambda: _peer_closed(conn))
                    response = {"ok": True, "result": result}
                except Exception as exc:
                    response = _error_response(exc)
                try:
                    conn.sendall(_encode(response))
                except OSError:  # the client went away (e.g. Ctrl-C while waiting)
                    return

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


def _peer_closed(conn: socket.socket) -> bool:
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


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class ControlClient:
    """Send requests to a running daemon.

    Parameters
    ----------
    path : path-like
        The control socket (:attr:`edgeasd.paths.Paths.control_socket`).
    timeout : float or None
        Seconds to wait for each response; ``None`` waits as long as it takes.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float | None = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def request(self, op: str, timeout: float | str | None = "default", **params: Any) -> dict:
        """Send one request and return its result.

        Parameters
        ----------
        op : str
            One of :data:`REQUESTS`.
        timeout : float, None or "default"
            Overrides the client's timeout for this request.
        **params
            The request's parameters.

        Raises
        ------
        DaemonNotRunning
            Nobody listens on the socket.
        ControlError
            The daemon refused the request (its message and help are kept) or did not answer.
        """
        wait = self.timeout if timeout == "default" else timeout
        request = {"op": op, **params}
        parse_request(json.dumps(request))  # refuse bad requests before sending
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonNotRunning(
                    f"no edgeasd daemon is listening on {self.path} ({exc.strerror})",
                    help="start it with `edgeasd run` or `systemctl start edgeasd`",
                ) from None
            except PermissionError:
                raise ControlError(
                    f"permission denied on the control socket {self.path}",
                    help="run as the edgeasd user or add yourself to its group "
                    "(sudo usermod -aG edgeasd $USER), then log in again",
                ) from None
            sock.settimeout(wait)
            try:
                sock.sendall(_encode(request))
                with sock.makefile("rb") as reader:
                    line = reader.readline(MAX_LINE_BYTES + 1)
            except TimeoutError:
                raise ControlError(
                    f"the daemon did not answer {op!r} within {wait} s",
                    help="check `journalctl -u edgeasd`; the daemon may be stalled",
                ) from None
            except OSError as exc:
                raise ControlError(f"control connection failed: {exc}") from None
        if not line:
            raise ControlError(
                f"the daemon closed the connection without answering {op!r}",
                help="it may have stopped or crashed: check `edgeasd status` and its log",
            )
        try:
            response = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            response = None
        if not isinstance(response, dict):
            raise ControlError(
                f"the daemon sent a malformed or truncated answer to {op!r}",
                help="it may have stopped mid-answer: check `edgeasd status` and its log",
            )
        if not response.get("ok"):
            raise ControlError(response.get("error", "request failed"), help=response.get("help"))
        return response["result"]
