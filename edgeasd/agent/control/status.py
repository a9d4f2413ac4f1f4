"""The daemon's status snapshot: kept in memory, served on the control socket, and written
atomically to ``<runtime_dir>/status.json`` so that ``edgeasd status`` works even when the
socket does not answer.

Snapshot keys: ``state`` (``starting``, ``learning``, ``running``, ``stopped``), ``pid``,
``started`` / ``updated`` (UNIX times), ``uptime_seconds``, ``model`` (name, id, window),
``windows`` (processed), ``windows_scored``, ``last`` (the last per-window record),
``threshold`` and ``threshold_source``, ``bank`` (references per domain tag), ``bank_size``,
``learning_needed`` (normal windows still needed before scoring starts), ``learning``
(why the agent cannot score yet, or None), ``enrolling``
(progress of an ``enroll --next`` request), ``source`` (the source's ``stats()``: frames,
overflows...), ``alerts`` (count), ``last_event``, ``logs`` (per event log: lines
``dropped`` to write errors and the current ``error``) and ``status_file`` (the same for
``status.json`` itself).

Scoring never depends on the disk: a ``status.json`` that cannot be written (a full
runtime file system) is skipped, counted and warned about once; the next write retries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeasd.atomic import write_json_atomic
from edgeasd.errors import StatusFileError

log = logging.getLogger(__name__)


class StatusBoard:
    """Thread-safe status snapshot of one daemon.

    Parameters
    ----------
    path : path-like
        The ``status.json`` file to keep up to date.
    model_info : edgeasd.embedding.onnx.ModelInfo
    monotonic : callable
        The clock of ``uptime_seconds`` (``time.monotonic``; a parameter for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model_info: Any,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        # uptime on the monotonic clock: a step of the wall clock made it jump (issue 20)
        self._monotonic = monotonic
        self._started_mono = monotonic()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._write_failed: str | None = None  # the current episode's error
        self._write_dropped = 0
        now = time.time()
        self._data: dict[str, Any] = {
            "state": "starting",
            "pid": os.getpid(),
            "started": now,
            "updated": now,
            "model": {
                "name": model_info.name,
                "version": model_info.version,
                "id": model_info.id,
                "window_seconds": model_info.window_seconds,
                "sample_rate": model_info.sample_rate,
                "members": list(getattr(model_info, "members", ())),
            },
            "windows": 0,
            "windows_scored": 0,
            "alerts": 0,
            "last": None,
            "last_event": None,
            "enrolling": None,
        }
        self._write()

    def update(self, write: bool = True, **fields: Any) -> None:
        """Set top-level fields and (unless ``write`` is false) rewrite ``status.json``."""
        with self._lock:
            self._data.update(fields)
        if write:
            self._write()

    def window(self, record: dict[str, Any]) -> None:
        """Account one processed window (its per-window record)."""
        with self._lock:
            self._data["windows"] += 1
            if "score" in record:
                self._data["windows_scored"] += 1
            self._data["last"] = record
        self._write()

    def event(self, event: dict[str, Any]) -> None:
        """Account one event (alert, recovered, signal, enrolled)."""
        with self._lock:
            if event.get("event") == "alert":
                self._data["alerts"] += 1
            self._data["last_event"] = event

    def snapshot(self) -> dict[str, Any]:
        """A copy of the current status with ``uptime_seconds`` filled in."""
        with self._lock:
            data = json.loads(json.dumps(self._data, default=str))
        data["uptime_seconds"] = round(self._monotonic() - self._started_mono, 1)
        data["status_file"] = {"dropped": self._write_dropped, "error": self._write_failed}
        return data

    def line(self) -> str:
        """One line for systemd's ``STATUS=``."""
        s = self.snapshot()
        if s.get("enrolling"):
            e = s["enrolling"]
            return f"enrolling: {e['collected']} of {e['n']} windows (alerts suppressed)"
        if s.get("learning"):
            return f"learning: {s['learning']}"
        last = s.get("last") or {}
        if "score" not in last:
            return f"{s['state']}: {s['windows']} windows, last {last.get('decision', '-')}"
        threshold = last.get("threshold")
        shown = "none" if threshold is None else f"{threshold:.3g}"  # uncalibrated: no threshold
        return (
            f"score {last['score']:.3g} (threshold {shown}) {last['decision']}, "
            f"{s['windows_scored']} scored, {s['alerts']} alerts"
        )

    def _write(self) -> None:
        with self._write_lock:  # control threads update too: one writer of the temp file
            data = self.snapshot()
            data["updated"] = time.time()
            try:
                write_json_atomic(self.path, data)
            except OSError as exc:
                self._write_dropped += 1
                if self._write_failed is None:
                    log.warning(
                        "%s: cannot write the status (%s); scoring goes on, the status is "
                        "still served on the control socket",
                        self.path,
                        exc.strerror or exc,
                    )
                self._write_failed = exc.strerror or str(exc)
                return
            if self._write_failed is not None:
                log.warning("%s: writable again", self.path)
                self._write_failed = None


def read_status(path: str | os.PathLike[str], socket_live: bool | None = None) -> dict | None:
    """The last snapshot a daemon wrote, with ``stale`` set when that daemon is gone.

    Parameters
    ----------
    path : path-like
        ``status.json``.
    socket_live : bool, optional
        Whether a daemon answers on the control socket. False: the snapshot is stale
        whatever its pid (a recorded pid may now belong to another process). None: judge
        by the pid alone.

    Returns
    -------
    dict or None
        ``None`` when no daemon ever wrote one there.

    Raises
    ------
    StatusFileError
        The file is unreadable, not JSON, not an object, or has a malformed ``pid``,
        ``state`` or ``model``.
    """
    path = Path(path)
    hint = (
        "the daemon rewrites it on start: restart it (systemctl restart edgeasd), or delete "
        f"{path} if no daemon runs"
    )
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except PermissionError:
        raise StatusFileError(
            f"permission denied reading the status file {path}",
            help="run as the edgeasd user or a member of its group",
        ) from None
    except OSError as exc:
        raise StatusFileError(f"cannot read the status file {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise StatusFileError(f"the status file {path} is corrupt: {exc}", help=hint) from None
    if not isinstance(data, dict):
        raise StatusFileError(
            f"the status file {path} is corrupt: a JSON {type(data).__name__}, not an object",
            help=hint,
        )
    pid = data.get("pid", 0)
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
        raise StatusFileError(
            f"the status file {path} is corrupt: pid {pid!r} is not a process id", help=hint
        )
    if not isinstance(data.get("state", ""), str) or not isinstance(data.get("model", {}), dict):
        raise StatusFileError(f"the status file {path} is corrupt: malformed fields", help=hint)
    alive = pid > 0 and _pid_alive(pid) and socket_live is not False
    data["stale"] = not alive or data.get("state") == "stopped"
    return data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
