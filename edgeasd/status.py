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
overflows...), ``alerts`` (count) and ``last_event``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class StatusBoard:
    """Thread-safe status snapshot of one daemon.

    Parameters
    ----------
    path : path-like
        The ``status.json`` file to keep up to date.
    model_info : edgeasd.embed.ModelInfo
    """

    def __init__(self, path: str | os.PathLike[str], model_info: Any) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
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
        data["uptime_seconds"] = round(time.time() - data["started"], 1)
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
        return (
            f"score {last['score']:.3g} (threshold {last['threshold']:.3g}) {last['decision']}, "
            f"{s['windows_scored']} scored, {s['alerts']} alerts"
        )

    def _write(self) -> None:
        data = self.snapshot()
        data["updated"] = time.time()
        write_json_atomic(self.path, data)


def write_json_atomic(path: Path, obj: dict[str, Any], fsync: bool = False) -> None:
    """Write JSON to ``path`` via a temporary file and a rename (readers never see half).

    With ``fsync`` the data reaches the disk before the rename (survives a power cut).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, default=str)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_status(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last snapshot a daemon wrote, with ``stale`` set when its process is gone.

    Returns
    -------
    dict or None
        ``None`` when no daemon ever wrote one there.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid = int(data.get("pid", 0))
    alive = pid > 0 and _pid_alive(pid)
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
