"""The audio of alerted windows, kept as FLAC with a JSON sidecar, size-capped.

When the detector raises an alert the daemon hands the window that raised it to
:class:`AlertAudio`, which writes ``<log_dir>/alert-audio/<stem>.flac`` and ``<stem>.json``
(the alert's time, window index, score, threshold, nearest reference id and domain) on a
worker thread, so that a slow or full disk never delays the audio path: a full queue or
a failed write (``ENOSPC``...) is skipped with one warning per episode (the FLAC is encoded in
memory, so a full disk is a plain ``OSError``, never an error inside libsndfile's callbacks).
Both files are written crash-safely (temporary file, fsync, rename), the FLAC first, so a
sidecar always has its audio.

The alert line wins over its audio: a window's audio is kept only if the log disk keeps, after
writing it, the room the logs may still grow into (``reserve``: their rotation caps less their
size, :func:`log_headroom`). Older alerts' audio makes room first (the newest matters most);
when even all of it would not, the new audio is skipped and the old kept. Every file in the
folder counts against ``logs.alert_audio_max_bytes``; room is made (oldest alerts first, sidecar
before FLAC) before a new alert is written, so the folder never exceeds the cap.
:meth:`AlertAudio.clean`, run at every start, removes what killed writers left: temporaries,
FLACs without a sidecar and sidecars without a FLAC. ``edgeasd report`` reads the audio back
with :func:`alert_records` and :func:`read_alert_audio`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from edgeasd.atomic import write_bytes_atomic
from edgeasd.audio.io import read_audio
from edgeasd.filemode import AUDIO_MODE, DIR_MODE, FILE_MODE, narrow_path

log = logging.getLogger(__name__)

#: Writing one 10 s, 16 kHz window (FLAC encoding, two fsyncs) took 56 ms median, 84 ms max on
#: the development machine's disk, three times a window's whole processing (~19 ms): hence the
#: worker thread; handing a window over takes ~0.03 ms.
#: Alerts waiting for the writer; one is raised per anomaly episode (k-of-n debounce), so
#: more than a few pending means the disk is stuck: further ones are dropped, not queued.
QUEUE_SIZE = 8
#: Free space kept on the log disk beyond the logs' own headroom (:func:`log_headroom` counts
#: bytes, the disk allocates blocks): a dozen log files' last 4 KiB blocks plus the folders',
#: rounded up. With it, a 256 KiB disk kept every alert and score line of 12 alerts
#: (tests/faults/test_audio_faults.py).
MARGIN_BYTES = 64 * 1024
#: The files of one kept alert, and the atomic writer's temporaries of them.
_NAME = re.compile(r"alert-[0-9T.]+Z-w[0-9]{8}\.(flac|json)")
_TEMPORARY = re.compile(r"\.alert-.*\.tmp")


def log_headroom(logs: Sequence[Path], max_bytes: int, backups: int) -> int:
    """Bytes the JSON-lines logs may still grow by: each log's rotation cap less its size.

    Parameters
    ----------
    logs : sequence of Path
        The live logs (``alerts.jsonl``, ``scores.jsonl``); their rotated ``.1`` ...
        ``.<backups>`` files are counted too.
    max_bytes, backups : int
        ``logs.max_bytes`` and ``logs.backups``.
    """
    room = 0
    for path in logs:
        used = 0
        for name in [path.name] + [f"{path.name}.{i}" for i in range(1, backups + 1)]:
            with contextlib.suppress(OSError):
                used += (path.parent / name).stat().st_size
        room += max(0, max_bytes * (backups + 1) - used)
    return room


def _free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """The window as FLAC bytes (16-bit), encoded in memory."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim != 1 or data.size == 0 or not np.isfinite(data).all():
        raise ValueError(f"not a finite mono window (shape {data.shape})")
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), int(sample_rate), format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def alert_id(unix_time: float, window_index: int, kind: str = "anomaly") -> str:
    """An alert's id: the UTC time and index of the window that raised it.

    ``YYYYMMDD-HHMMSS-INDEX``, e.g. ``20261207-130501-42`` (what ``edgeasd feedback`` takes;
    unique across restarts: a window index restarts at 0, the time does not repeat). A
    no-signal alert's id starts with ``no-signal-`` (it keeps no audio). The kept audio of
    the alerting window is ``<clip_stem>.flac`` (the event's ``clip``).
    """
    stamp = datetime.fromtimestamp(float(unix_time), timezone.utc)
    prefix = "" if kind == "anomaly" else kind.replace("_", "-") + "-"
    return f"{prefix}{stamp:%Y%m%d-%H%M%S}-{int(window_index)}"


def clip_stem(unix_time: float, window_index: int) -> str:
    """A kept window's file stem (``alert-20261207T120000.000000Z-w00000118``), sortable."""
    stamp = datetime.fromtimestamp(float(unix_time), timezone.utc)
    return f"alert-{stamp:%Y%m%dT%H%M%S.%f}Z-w{int(window_index):08d}"


def _stem(meta: dict[str, Any]) -> str:
    return clip_stem(float(meta["unix_time"]), int(meta["window_index"]))


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
    reserve : callable, optional
        Bytes the log disk must keep free for the logs (:func:`log_headroom`), asked before
        each write; default none.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        sample_rate: int,
        reserve: Callable[[], int] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.sample_rate = int(sample_rate)
        self.reserve = reserve or (lambda: 0)
        self._queue: queue.Queue[tuple[np.ndarray, dict[str, Any]] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        #: Why alert audio is not being kept (None: it is); one warning per such episode.
        self.failing: str | None = None
        #: Alerts whose audio was not kept in the current episode.
        self.skipped = 0

    def clip_name(self, unix_time: float, window_index: int) -> str | None:
        """The file :meth:`keep` writes for this alert (None: no audio is kept)."""
        return f"{clip_stem(unix_time, window_index)}.flac" if self.max_bytes > 0 else None

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

    def clean(self) -> list[str]:
        """At start: remove what killed writers left, then fit the cap (it may have shrunk).

        Removed: the atomic writer's temporaries (``.alert-*.tmp``), FLACs without a sidecar
        and sidecars without their FLAC. FLACs an older version left wider are narrowed to
        ``0600``. Other files are left alone (and still counted against the cap). Called
        before the writer thread runs: no write is in flight.

        Returns
        -------
        list of str
            The removed file names, sorted.
        """
        if not self.directory.is_dir():
            return []
        names = {p.name for p in self.directory.iterdir() if p.is_file()}
        named = {str(r.get("file")) for r in alert_records(self.directory)}
        gone = []
        for name in sorted(names):
            ours = _NAME.fullmatch(name)
            temporary = _TEMPORARY.fullmatch(name) is not None
            unpaired = ours is not None and (
                name not in named
                if name.endswith(".flac")
                else name[: -len(".json")] + ".flac" not in named
            )
            if temporary or unpaired:
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
                    gone.append(name)
            elif ours is not None and name.endswith(".flac"):  # older versions: 0644
                narrow_path(self.directory / name, AUDIO_MODE)
        if gone:
            log.info("removed %d file(s) of interrupted alert-audio writes: %s", len(gone), gone)
        self.enforce_cap()
        return gone

    def write(self, samples: np.ndarray, meta: dict[str, Any]) -> Path | None:
        """Write one alert's FLAC and sidecar now, after making room for them under the cap.

        Returns
        -------
        pathlib.Path or None
            The FLAC, or None when its audio is not kept (the log disk needs the room, the
            disk is full, or the window is bad; one warning per episode).
        """
        if self.max_bytes <= 0:
            return None
        stem = _stem(meta)
        flac = self.directory / f"{stem}.flac"
        record = {**meta, "sample_rate": self.sample_rate, "file": flac.name}
        try:
            audio = _flac(samples, self.sample_rate)
        except (ValueError, TypeError, RuntimeError, sf.LibsndfileError) as exc:
            return self._skip(f"the window cannot be encoded ({exc})")
        side = json.dumps(record, default=str).encode("utf-8")
        need = len(audio) + len(side)
        if need > self.max_bytes:
            return self._skip(
                f"one alert's audio ({need} bytes) exceeds logs.alert_audio_max_bytes="
                f"{self.max_bytes}"
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            reserve = max(0, int(self.reserve())) + MARGIN_BYTES
            free = _free_bytes(self.directory)
            deficit = reserve + need - free
            if deficit > 0:  # the newest alerts' audio matters most: older audio makes room
                kept = sum(self._size(r) for r in alert_records(self.directory))
                if kept < deficit:  # even deleting all of it would not: delete nothing
                    return self._skip(
                        f"the log disk has {free / 2**20:.1f} MiB free and the logs may still "
                        f"need {reserve / 2**20:.1f} MiB (the alert lines come first)"
                    )
                self._delete_oldest(lambda freed: freed >= deficit, "the logs need the room")
            if self.enforce_cap(incoming=need) + need > self.max_bytes:
                return self._skip(
                    f"other files in {self.directory} take logs.alert_audio_max_bytes="
                    f"{self.max_bytes}"
                )
            write_bytes_atomic(flac, audio, AUDIO_MODE)
            write_bytes_atomic(self.directory / f"{stem}.json", side, FILE_MODE)
        except OSError as exc:  # ENOSPC, read-only disk
            flac.unlink(missing_ok=True)
            return self._skip(f"{exc.strerror or exc} in {self.directory}")
        if self.failing is not None:
            log.info(
                "keeping alert audio again (%d alert(s) without audio since: %s)",
                self.skipped,
                self.failing,
            )
            self.failing, self.skipped = None, 0
        return flac

    def _skip(self, why: str) -> None:
        """Count one alert without audio; warn once per episode."""
        self.skipped += 1
        if self.failing is None:
            log.warning(
                "not keeping alert audio: %s; the alert lines are written regardless, and "
                "this is not repeated until alert audio is kept again",
                why,
            )
            self.failing = why
        return None

    def _total(self) -> int:
        total = 0
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return total

    def _size(self, record: dict[str, Any]) -> int:
        flac = self.directory / str(record["file"])
        total = 0
        for path in (flac, flac.with_suffix(".json")):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def _delete_oldest(self, enough: Callable[[int], bool], why: str) -> int:
        """Delete the oldest alerts until ``enough(bytes freed)``; returns the bytes freed.

        Each alert's sidecar goes before its FLAC: a kill in between leaves a FLAC that is
        still counted and that :meth:`clean` removes at the next start.
        """
        freed = 0
        for oldest in alert_records(self.directory):
            if enough(freed):
                break
            log.info("deleting the audio of an older alert, %s (%s)", oldest["file"], why)
            flac = self.directory / str(oldest["file"])
            for path in (flac.with_suffix(".json"), flac):
                with contextlib.suppress(OSError):
                    size = path.stat().st_size
                    path.unlink()
                    freed += size
        return freed

    def enforce_cap(self, incoming: int = 0) -> int:
        """Delete the oldest alerts until every file of the folder plus ``incoming`` fits.

        Returns
        -------
        int
            The folder's bytes afterwards (more than the cap allows only when files that are
            not kept alerts fill it).
        """
        if not self.directory.is_dir():
            return 0
        total = self._total()
        over = total + incoming - self.max_bytes
        if over > 0:
            why = f"logs.alert_audio_max_bytes={self.max_bytes}"
            total -= self._delete_oldest(lambda freed: freed >= over, why)
        return total
