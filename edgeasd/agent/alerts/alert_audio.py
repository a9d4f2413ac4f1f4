"""The audio of alerted windows, kept as FLAC with a JSON sidecar, size-capped.

When the detector raises an alert the daemon hands the window that raised it to
:class:`AlertAudio`, which writes ``<log_dir>/alert-audio/<stem>.flac`` and ``<stem>.json``
(the alert's time, window index, score, threshold, nearest reference id and domain) on a
worker thread, so that a slow or full disk never delays the audio path: a full queue or
a failed write (``ENOSPC``...) is logged and skipped. Both files are written crash-safely
(temporary file, fsync, rename), the FLAC first, so a sidecar always has its audio. When
the folder exceeds ``logs.alert_audio_max_bytes`` the oldest alerts' audio is deleted.
``edgeasd report`` reads it back with :func:`alert_records` and :func:`read_alert_audio`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.atomic import write_json_atomic
from edgeasd.audio.io import read_audio, write_audio
from edgeasd.errors import EdgeasdError
from edgeasd.filemode import DIR_MODE

log = logging.getLogger(__name__)

#: Writing one 10 s, 16 kHz window (FLAC encoding, two fsyncs) took 56 ms median, 84 ms max on
#: the development machine's disk, three times a window's whole processing (~19 ms): hence the
#: worker thread; handing a window over takes ~0.03 ms.
#: Alerts waiting for the writer; one is raised per anomaly episode (k-of-n debounce), so
#: more than a few pending means the disk is stuck: further ones are dropped, not queued.
QUEUE_SIZE = 8


def alert_id(unix_time: float, window_index: int, kind: str = "anomaly") -> str:
    """An alert's id: its UTC time and window (``alert-20261207T120000.000000Z-w00000118``).

    An anomaly alert's kept audio is ``<id>.flac`` (with ``<id>.json``); a no-signal
    alert's id starts with ``no-signal-`` (it keeps no audio).
    """
    stamp = datetime.fromtimestamp(float(unix_time), timezone.utc)
    prefix = "alert" if kind == "anomaly" else kind.replace("_", "-")
    return f"{prefix}-{stamp:%Y%m%dT%H%M%S.%f}Z-w{int(window_index):08d}"


def _stem(meta: dict[str, Any]) -> str:
    return alert_id(float(meta["unix_time"]), int(meta["window_index"]))


def alert_records(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Sidecars of the kept alert audio whose FLAC exists, oldest first.

    Each has ``time`` (the alert event's ISO time), ``unix_time``, ``window_index``,
    ``score``, ``threshold``, ``nearest_id``, ``nearest_domain``, ``sample_rate`` and
    ``file`` (the FLAC's name in ``directory``).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for side in directory.glob("alert-*.json"):
        try:
            record = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("ignoring unreadable alert-audio sidecar %s", side)
            continue
        if isinstance(record, dict) and (directory / str(record.get("file"))).is_file():
            out.append(record)
    return sorted(out, key=lambda r: r.get("unix_time", 0.0))


def read_alert_audio(directory: str | os.PathLike[str], record: dict[str, Any]) -> np.ndarray:
    """The kept samples of one alert, shape ``(n,)`` float32 at ``record['sample_rate']``."""
    return read_audio(Path(directory) / record["file"]).samples


class AlertAudio:
    """Writes alerted windows' audio off the calling thread, capped in total size.

    Parameters
    ----------
    directory : path-like
        ``<log_dir>/alert-audio`` (:attr:`edgeasd.config.paths.Paths.alert_audio_dir`).
    max_bytes : int
        Cap on the folder's total size (``0``: keep nothing).
    sample_rate : int
        Rate of the samples handed to :meth:`keep`.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, sample_rate: int):
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.sample_rate = int(sample_rate)
        self._queue: queue.Queue[tuple[np.ndarray, dict[str, Any]] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None

    def clip_name(self, unix_time: float, window_index: int) -> str | None:
        """The file :meth:`keep` writes for this alert (None: no audio is kept)."""
        return f"{alert_id(unix_time, window_index)}.flac" if self.max_bytes > 0 else None

    def alert_fields(
        self,
        unix_time: float,
        window_index: int,
        nearest_id: int,
        nearest_domain: str,
        *,
        clipped: bool,
        level_dbfs: float | None,
    ) -> dict[str, Any]:
        """What an anomaly alert event says about itself: its id, its kept clip (when
        audio is kept), the nearest reference, ``clipped`` and the window's level."""
        fields = {
            "id": alert_id(unix_time, window_index),
            "clip": self.clip_name(unix_time, window_index),
            "nearest_id": int(nearest_id),
            "nearest_domain": nearest_domain,
            "clipped": bool(clipped),
            "level_dbfs": level_dbfs,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def keep(self, samples: np.ndarray, meta: dict[str, Any]) -> None:
        """Queue one alerted window for writing; never blocks nor raises.

        Parameters
        ----------
        samples : numpy.ndarray, shape (n,)
            The window (not modified later by the caller: the windower hands out fresh
            arrays).
        meta : dict
            Sidecar fields; needs ``unix_time`` and ``window_index``.
        """
        if self.max_bytes <= 0:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-audio", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((samples, meta))
        except queue.Full:
            log.warning(
                "alert audio writer is %d alerts behind (slow disk?): not keeping the audio "
                "of the alert at window %s",
                QUEUE_SIZE,
                meta.get("window_index"),
            )

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued writes (at most ``timeout`` seconds) and stop the writer."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("alert audio writer stuck: %d alerts' audio not written", QUEUE_SIZE)
            return
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.write(*item)
            except Exception:  # a bug must not kill the writer silently
                log.exception("could not keep the audio of an alert")

    def write(self, samples: np.ndarray, meta: dict[str, Any]) -> Path | None:
        """Write one alert's FLAC and sidecar now, then enforce the cap.

        Returns
        -------
        pathlib.Path or None
            The FLAC, or None when it could not be written (logged).
        """
        stem = _stem(meta)
        flac = self.directory / f"{stem}.flac"
        record = {**meta, "sample_rate": self.sample_rate, "file": flac.name}
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            write_audio(flac, samples, self.sample_rate)
            write_json_atomic(self.directory / f"{stem}.json", record, fsync=True)
        except (OSError, EdgeasdError) as exc:  # ENOSPC, read-only disk, bad samples
            log.warning("could not keep the audio of alert %s: %s", stem, exc)
            flac.unlink(missing_ok=True)
            return None
        self.enforce_cap()
        return flac

    def enforce_cap(self) -> None:
        """Delete the oldest alerts' audio until the folder fits ``max_bytes``."""
        records = alert_records(self.directory)
        sizes = [self._size(r) for r in records]
        total = sum(sizes)
        while records and total > self.max_bytes:
            oldest = records.pop(0)
            total -= sizes.pop(0)
            log.info(
                "alert audio exceeds logs.alert_audio_max_bytes=%d: deleting %s",
                self.max_bytes,
                oldest["file"],
            )
            (self.directory / oldest["file"]).unlink(missing_ok=True)
            (self.directory / oldest["file"]).with_suffix(".json").unlink(missing_ok=True)

    def _size(self, record: dict[str, Any]) -> int:
        flac = self.directory / record["file"]
        total = 0
        for path in (flac, flac.with_suffix(".json")):
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total
