"""The operator's end of the control socket: :class:`ControlClient`.

Sends requests (:mod:`edgeasd.agent.control.protocol`) to a running daemon and turns error
responses back into :class:`~edgeasd.errors.ControlError` (:class:`DaemonNotRunning`,
:class:`DaemonBusy`).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from edgeasd.agent.control.protocol import (
    BUSY_HELP,
    DaemonBusy,
    DaemonNotRunning,
    UntrustedDaemon,
    encode,
    parse_request,
)
from edgeasd.agent.control.wire import MAX_LINE_BYTES, peer_credentials
from edgeasd.config.paths import runtime_owner
from edgeasd.errors import ControlError


class ControlClient:
    """Send requests to a running daemon.

    Parameters
    ----------
    path : path-like
        The control socket (:attr:`edgeasd.config.paths.Paths.control_socket`).
    timeout : float
        Seconds to wait for each response (every call has one; ``None`` is refused).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self.path = Path(path)
        if timeout is None or not timeout > 0:
            raise ControlError(f"a control request needs a positive timeout, got {timeout!r}")
        self.timeout = float(timeout)

    def request(
        self,
        op: str,
        timeout: float | str = "default",
        fds: list[int] | None = None,
        **params: Any,
    ) -> dict:
        """Send one request and return its result.

        Parameters
        ----------
        op : str
            One of :data:`~edgeasd.agent.control.protocol.REQUESTS`.
        timeout : float or "default"
            Overrides the client's timeout for this request. When it passes, the client
            hangs up, and the daemon abandons the request (nothing of it is enrolled).
        fds : list of int, optional
            Open descriptors sent with the request (``enroll_files``: one per name).
        **params
            The request's parameters.

        Raises
        ------
        DaemonNotRunning
            Nobody listens on the socket.
        DaemonBusy
            The daemon serves its maximum of connections, or its backlog is full.
        ControlError
            The daemon refused the request (its message and help are kept) or did not answer.
        """
        wait = self.timeout if timeout == "default" else float(timeout)
        request = {"op": op, **params}
        parse_request(json.dumps(request))  # refuse bad requests before sending
        # the folder the daemon would refuse, refused before anything is sent (issue 20)
        expected = runtime_owner(self.path.parent)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(min(5.0, wait))
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
            except (BlockingIOError, TimeoutError):
                raise DaemonBusy(
                    f"the daemon's control socket {self.path} accepts no more connections "
                    "(its backlog is full; the daemon may be stopped or overloaded)",
                    help="check `systemctl status edgeasd` (a stopped daemon: `kill -CONT`); "
                    + BUSY_HELP,
                ) from None
            except OSError as exc:
                raise ControlError(f"cannot connect to {self.path}: {exc}") from None
            _check_peer(sock, self.path, expected)
            sock.settimeout(wait)
            try:
                try:
                    data = encode(request)
                    if fds:
                        sent = socket.send_fds(sock, [data], fds)
                        sock.sendall(data[sent:])
                    else:
                        sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused unread (busy): its answer may still wait to be read
                with sock.makefile("rb") as reader:
                    line = reader.readline(MAX_LINE_BYTES + 1)
            except TimeoutError:
                raise ControlError(
                    f"the daemon did not answer {op!r} within {wait:g} s; the request was "
                    "abandoned (nothing of it is applied)",
                    help="check `edgeasd status` and `journalctl -u edgeasd`; the daemon may be "
                    "stalled or stopped",
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
            kind = DaemonBusy if response.get("type") == "Busy" else ControlError
            raise kind(str(response.get("error", "request failed")), help=response.get("help"))
        return response["result"]


def _check_peer(sock: socket.socket, path: Path, expected: int | None) -> None:
    """Refuse a listener that is not the agent (``SO_PEERCRED``), before sending anything.

    The daemon runs as the runtime folder's owner (:meth:`Paths.ensure` refuses any other
    folder); root and this user are trusted too. Anyone else listening there -- a socket
    planted before the folder was handed back, a folder of theirs -- would receive this
    request and its open descriptors, and could answer with a forged status.
    """
    _, uid, _ = peer_credentials(sock)
    allowed = {0, os.getuid()} | ({expected} if expected is not None else set())
    if uid not in allowed:
        raise UntrustedDaemon(
            f"the control socket {path} is served by another user (uid {uid}), not the "
            f"agent's (uid {expected}): refusing to send it anything",
            help="stop whatever listens there (`ss -xlp | grep control.sock`), then start "
            "the agent (`systemctl restart edgeasd`)",
        )
