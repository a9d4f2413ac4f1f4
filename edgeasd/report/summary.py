"""What the report says in words: each alert's peak and duration, when the agent was not
running, and which frequency bands changed most against the nearest reference.

Pure functions of the logged records and spectrograms (no plotting, no files), used by
:mod:`edgeasd.report.build` and :mod:`edgeasd.report.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

#: A gap between two consecutive windows longer than this many times their usual spacing
#: (the median) means the agent was not running (stopped, restarting, or the host was
#: down): a hop is at most a window (10 s), so a restart (~5-20 s of model load and
#: kernel warm-up) shows as a gap of several hops, while scoring jitter stays below 2.
GAP_FACTOR = 3.0
#: Band changes smaller than this (dB, mean log-mel energy) are not named: the spread of
#: one band between two normal windows of the demo machine and the real clips is 1-3 dB.
MIN_CHANGE_DB = 3.0


@dataclass(frozen=True)
class AlertSummary:
    """One alert episode as the report states it.

    Attributes
    ----------
    peak_score : float or None
        The highest score of the episode (its windows, its reminders and recovery).
    duration_seconds : float or None
        Alert to recovery; for an episode still going at the end of the range, alert to
        the last window logged (``ongoing`` is then True). None: nothing after the alert.
    ongoing : bool
        No recovery was logged in the range.
    """

    peak_score: float | None
    duration_seconds: float | None
    ongoing: bool


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def summarize_alert(
    alert: dict[str, Any], events: Sequence[dict[str, Any]], windows: Sequence[dict[str, Any]]
) -> AlertSummary:
    """Peak score and duration of the episode ``alert`` opened.

    Parameters
    ----------
    alert : dict
        The ``alert`` event (with ``unix``).
    events, windows : sequence of dict
        The range's other events and window records (with ``unix``), oldest first. The
        episode's ``reminder`` and ``recovered`` events name the alert's time in
        ``started``.
    """
    kind = alert.get("kind", "anomaly")
    mine = [
        e
        for e in events
        if e.get("event") in ("reminder", "recovered")
        and e.get("kind", "anomaly") == kind
        and e.get("started") == alert.get("time")
    ]
    end_event = next((e for e in mine if e["event"] == "recovered"), None)
    end = end_event["unix"] if end_event is not None else None
    peaks = [_number(alert.get("score"))]
    peaks += [_number(e.get("max_score")) for e in mine]
    if kind == "anomaly":
        peaks += [
            _number(w.get("score"))
            for w in windows
            if w["unix"] >= alert["unix"] and (end is None or w["unix"] < end)
        ]
    values = [p for p in peaks if p is not None]
    if end_event is not None:
        duration = _number(end_event.get("duration_seconds"))
        if duration is None:
            duration = end - alert["unix"]
        return AlertSummary(max(values, default=None), duration, ongoing=False)
    later = [w["unix"] for w in windows if w["unix"] >= alert["unix"]]
    duration = max(later) - alert["unix"] if later else None
    return AlertSummary(max(values, default=None), duration, ongoing=True)


def stopped_spans(windows: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start, end) UNIX times of the gaps in the windows where the agent was not running.

    A gap is longer than :data:`GAP_FACTOR` times the median spacing of the windows; the
    span runs from the window before it to the window after it.
    """
    times = np.array(sorted(w["unix"] for w in windows), dtype=float)
    if len(times) < 3:
        return []
    steps = np.diff(times)
    usual = float(np.median(steps))
    if usual <= 0:
        return []
    return [
        (float(times[i]), float(times[i + 1])) for i in np.flatnonzero(steps > GAP_FACTOR * usual)
    ]


def format_hz(hz: float) -> str:
    """``120 Hz``, ``2.4 kHz``: two significant figures above 1 kHz, whole hertz below."""
    if hz >= 1000:
        return f"{hz / 1000:.2g} kHz" if hz < 10000 else f"{hz / 1000:.0f} kHz"
    return f"{hz:.0f} Hz"


def band_changes(
    diff_db: np.ndarray, centres_hz: np.ndarray, top: int = 3, min_db: float = MIN_CHANGE_DB
) -> list[tuple[float, float]]:
    """The largest band changes, each as (dB, band centre in Hz), largest first.

    Parameters
    ----------
    diff_db : numpy.ndarray, shape (bands,)
        Mean log-mel energy per band, alert minus reference.
    centres_hz : numpy.ndarray, shape (bands,)
        Each band's centre frequency.
    top : int
        At most this many; a chosen band's two neighbours on each side are not chosen
        again (one broad change is one change).
    min_db : float
        Smaller changes are left out.
    """
    diff_db = np.asarray(diff_db, dtype=float)
    order = np.argsort(-np.abs(diff_db), kind="stable")
    taken: list[int] = []
    for i in order:
        if len(taken) == top or abs(diff_db[i]) < min_db:
            break
        if all(abs(int(i) - j) > 2 for j in taken):
            taken.append(int(i))
    return [(float(diff_db[i]), float(centres_hz[i])) for i in taken]


def describe_band_changes(changes: Sequence[tuple[float, float]]) -> str:
    """``+14 dB around 120 Hz, −6 dB around 2.4 kHz`` (or that no band changed much)."""
    if not changes:
        return f"no band differs from the reference by {MIN_CHANGE_DB:.0f} dB or more"
    return ", ".join(
        f"{'+' if db > 0 else '−'}{abs(db):.0f} dB around {format_hz(hz)}" for db, hz in changes
    )


def format_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 days`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_time(t: float | str | None) -> str:
    """A logged ISO time or a UNIX time as ``2026-12-07 13:05:00 CET`` (``?``: unknown)."""
    if t is None:
        return "?"
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t).timestamp()
        except ValueError:
            return "?"
    return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
