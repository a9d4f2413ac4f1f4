"""The control socket's protocol: JSON lines over an ``AF_UNIX`` stream socket.

The socket lives at ``<runtime_dir>/control.sock`` with permissions ``0660`` (owner and
group, i.e. the ``edgeasd`` service user and the operators added to its group). There is no
network port. Each request is one JSON object on one line, each response one JSON object on
one line; a connection may carry several requests in turn.

Requests (``op`` plus parameters)::

    {"op": "status"}
    {"op": "enroll_next", "n": 5, "domain": "target"}
    {"op": "enroll_files", "names": ["a.wav", ...], "domain": "target"}   + one fd per name
    {"op": "reload"}
    {"op": "feedback", "alert": "20261207-130501-42", "label": "normal"}
    {"op": "bank_remove", "ids": [12, 13]}
    {"op": "bank_restore", "generation": 1}

``enroll_next`` and ``enroll_files`` take ``"accept_anomalous": true`` (optional) to enroll
windows that the enrollment guard would refuse.

The socket trusts nobody: ``enroll_files`` carries no path the daemon would open with its own
rights. The client opens each file itself and passes the open descriptors with the request
line (``SCM_RIGHTS``, :mod:`edgeasd.agent.control.wire`); ``names`` only label them in
messages. The daemon logs the peer's pid and uid (``SO_PEERCRED``) of every request that
changes something.

Responses::

    {"ok": true, "result": {...}}
    {"ok": false, "error": "what is wrong", "help": "what to do", "type": "BankError"}
    {"ok": false, "error": "the daemon is busy: ...", "help": "...", "type": "Busy"}

This module holds what both ends share: the requests (:func:`parse_request`), the line
encoding and the errors a client raises. :mod:`~edgeasd.agent.control.server` serves it,
:mod:`~edgeasd.agent.control.client` speaks it.
"""

from __future__ import annotations

import json
from typing import Any

from edgeasd.agent.control.wire import MAX_FDS
from edgeasd.errors import ControlError

#: Parameters each request takes, with their types.
REQUESTS: dict[str, dict[str, type]] = {
    "status": {},
    "enroll_next": {"n": int, "domain": str},
    "enroll_files": {"names": list, "domain": str},
    "reload": {},
    "feedback": {"alert": str, "label": str},
    "bank_remove": {"ids": list},
    "bank_restore": {"generation": int},
}
#: Optional parameters, with their types (absent: False).
OPTIONAL: dict[str, dict[str, type]] = {
    "enroll_next": {"accept_anomalous": bool},
    "enroll_files": {"accept_anomalous": bool},
}
#: Largest ``n`` of ``enroll_next`` the protocol carries (a 64-bit integer): the daemon
#: refuses more windows than ``enrollment.max_next_seconds`` allows by name; a 400-digit
#: ``n`` raised OverflowError there, answered ``Internal`` (issue 20).
MAX_N = 2**63 - 1
#: Deepest JSON nesting decoded before ``RecursionError`` would (issue 20: 100,000 nested
#: brackets got ``Internal`` and a traceback). A request is one flat object.
MAX_DEPTH = 32

#: Requests that change the bank or the configuration: logged with the peer's pid and uid,
#: and dropped when their client hung up before they were handled.
MUTATING = frozenset(
    {"enroll_next", "enroll_files", "reload", "feedback", "bank_remove", "bank_restore"}
)


class DaemonNotRunning(ControlError):
    """No daemon listens on the control socket (missing file or connection refused)."""


class DaemonBusy(ControlError):
    """The daemon serves its maximum of connections, or its listen backlog is full."""


class UntrustedDaemon(ControlError):
    """Whoever listens on the control socket is not the agent (``SO_PEERCRED``): nothing sent."""


BUSY_HELP = (
    "other clients hold the control socket; retry in a few seconds, and look for scripts "
    "that keep connections open (`ss -xp | grep control.sock`)"
)


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
    raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
    if _depth(raw) > MAX_DEPTH:
        raise ControlError(f"control request is not valid JSON: nested deeper than {MAX_DEPTH}")
    try:
        request = json.loads(raw, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"control request is not valid JSON: {exc}") from None
    except ValueError as exc:  # a duplicate key, an integer of over 4,300 digits
        raise ControlError(f"control request is not valid JSON: {_short(str(exc))}") from None
    except RecursionError:  # not reached below MAX_DEPTH; a last guard
        raise ControlError("control request is not valid JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise ControlError("control request must be a JSON object")
    op = request.get("op")
    if not isinstance(op, str) or op not in REQUESTS:
        raise ControlError(
            f"unknown control request op {_short(repr(op))}",
            help=f"known ops: {', '.join(REQUESTS)}",
        )
    spec, optional = REQUESTS[op], OPTIONAL.get(op, {})
    extra = set(request) - set(spec) - set(optional) - {"op"}
    if extra:
        raise ControlError(f"request {op!r} takes no parameter(s) {_short(repr(sorted(extra)))}")
    for key, kind in spec.items():
        value = request.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ControlError(f"request {op!r} needs parameter {key!r} of type {kind.__name__}")
    for key, kind in optional.items():
        if key in request and not isinstance(request[key], kind):
            raise ControlError(f"request {op!r}: parameter {key!r} must be a {kind.__name__}")
    if op == "enroll_next" and not 1 <= request["n"] <= MAX_N:
        raise ControlError(
            f"enroll_next needs n >= 1 (a 64-bit integer), got {_short(repr(request['n']))}"
        )
    if op == "enroll_files":
        names = request["names"]
        if not names or not all(isinstance(p, str) for p in names) or len(names) > MAX_FDS:
            raise ControlError(
                f"enroll_files needs a non-empty list of at most {MAX_FDS} file names "
                "(one open descriptor passed per name)"
            )
    return request


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (``{"op":"status","op":"reload"}`` reloaded)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {_short(repr(key))}")
        out[key] = value
    return out


def _depth(raw: bytes) -> int:
    """The deepest bracket nesting of a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _short(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode(obj: dict[str, Any]) -> bytes:
    """One response or request line: compact JSON and a newline."""
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"
