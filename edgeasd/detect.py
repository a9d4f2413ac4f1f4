"""The detector: a single threshold with a k-of-n debounce, raising alert/recovered events.

A window *exceeds* when its normalized score is strictly above the threshold. The
detector alerts on the rising edge, when at least ``k`` of the last ``n`` scored windows
exceed, and reports ``recovered`` when, while alerting, fewer than ``k`` of the last
``n`` exceed. Windows that signal-quality checks flagged are skipped (pass
``score=None``): they count neither as normal nor as anomalous.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from edgeasd.errors import InputError


def iso_time(t: float) -> str:
    """ISO 8601 local time with UTC offset and milliseconds for a UNIX time."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def make_event(event: str, time: float, **fields: Any) -> dict[str, Any]:
    """An event record as sinks write it: ``{"time": ISO 8601, "event": kind, ...}``.

    Parameters
    ----------
    event : str
        The kind: ``window``, ``alert``, ``recovered``, ``signal``, ``enrolled``, ...
    time : float
        UNIX time the event refers to (for windows: the first sample).
    **fields
        Further JSON-serializable fields; ``None`` values are dropped.
    """
    record: dict[str, Any] = {"time": iso_time(time), "event": event}
    record.update((k, v) for k, v in fields.items() if v is not None)
    return record


@dataclass(frozen=True)
class Event:
    """An alert or recovery.

    Attributes
    ----------
    event : str
        ``"alert"`` or ``"recovered"``.
    time : float
        UNIX time of the window that triggered it.
    window_index : int
        Index of that window.
    score : float
        Its normalized score.
    threshold : float
        The threshold in force.
    threshold_source : str
        Where the threshold came from (for example ``"bank quantile 0.99, 120 refs"``).
    exceeding : int
        How many of the last ``n`` windows exceeded.
    k, n : int
        The debounce setting.
    started : float, optional
        ``recovered`` only: UNIX time of the alert's window.
    max_score : float, optional
        ``recovered`` only: the highest score while alerting.
    """

    event: str
    time: float
    window_index: int
    score: float
    threshold: float
    threshold_source: str
    exceeding: int
    k: int
    n: int
    started: float | None = None
    max_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as sinks write it (see :func:`make_event`), times in ISO 8601."""
        fields = asdict(self)
        del fields["event"], fields["time"]
        if self.started is not None:
            fields["started"] = iso_time(self.started)
            fields["duration_seconds"] = round(self.time - self.started, 3)
        return make_event(self.event, self.time, **fields)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise InputError(f"threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be finite, got {threshold}")
    return float(threshold)


@dataclass
class Detector:
    """Threshold and k-of-n debounce over a stream of window scores.

    Parameters
    ----------
    threshold : float
        Scores strictly above it exceed.
    k, n : int
        Alert when at least ``k`` of the last ``n`` scored windows exceed (1 <= k <= n).
    threshold_source : str
        Where the threshold came from; copied into every event and :meth:`state`.
    """

    threshold: float
    k: int = 1
    n: int = 1
    threshold_source: str = ""
    alerting: bool = field(default=False, init=False)
    windows: int = field(default=0, init=False)
    alerts: int = field(default=0, init=False)
    _recent: deque[bool] = field(init=False, repr=False)
    _started: float | None = field(default=None, init=False, repr=False)
    _max_score: float = field(default=-math.inf, init=False, repr=False)

    def __post_init__(self) -> None:
        self.threshold = _check_threshold(self.threshold)
        for name in ("k", "n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.k > self.n:
            raise InputError(f"k ({self.k}) must not exceed n ({self.n})")
        self._recent = deque(maxlen=self.n)

    @property
    def exceeding(self) -> int:
        """How many of the last ``n`` scored windows exceeded."""
        return sum(self._recent)

    def set_threshold(self, threshold: float, threshold_source: str = "") -> None:
        """Change the threshold (after an enrollment recalibrated it); history is kept."""
        self.threshold = _check_threshold(threshold)
        self.threshold_source = threshold_source

    def reset(self) -> None:
        """Forget the history and any ongoing alert (no event is emitted)."""
        self._recent.clear()
        self.alerting = False
        self._started = None
        self._max_score = -math.inf

    def update(self, score: float | None, time: float, window_index: int) -> list[Event]:
        """Feed one window's score.

        Parameters
        ----------
        score : float or None
            The window's normalized score; ``None`` for a window skipped because of
            its signal quality (it does not enter the k-of-n history).
        time : float
            UNIX time of the window's first sample.
        window_index : int
            The window's index in the stream.

        Returns
        -------
        list of Event
            ``[]``, ``[alert]`` on the rising edge, or ``[recovered]`` on the falling edge.

        Raises
        ------
        InputError
            ``score`` is NaN or not a number.
        """
        if score is None:
            return []
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            try:
                score = float(score)  # numpy scalars
            except (TypeError, ValueError):
                raise InputError(f"score must be a number or None, got {score!r}") from None
        if math.isnan(score):
            raise InputError(f"score of window {window_index} is NaN")
        score = float(score)
        self.windows += 1
        self._recent.append(score > self.threshold)
        exceeding = self.exceeding
        if self.alerting:
            self._max_score = max(self._max_score, score)
        if not self.alerting and exceeding >= self.k:
            self.alerting, self._started, self._max_score = True, time, score
            self.alerts += 1
            return [self._event("alert", score, time, window_index, exceeding)]
        if self.alerting and exceeding < self.k:
            event = self._event(
                "recovered",
                score,
                time,
                window_index,
                exceeding,
                started=self._started,
                max_score=self._max_score,
            )
            self.alerting, self._started, self._max_score = False, None, -math.inf
            return [event]
        return []

    def _event(self, kind: str, score: float, time: float, index: int, exc: int, **kw) -> Event:
        return Event(
            event=kind,
            time=time,
            window_index=index,
            score=score,
            threshold=self.threshold,
            threshold_source=self.threshold_source,
            exceeding=exc,
            k=self.k,
            n=self.n,
            **kw,
        )

    def state(self) -> dict[str, Any]:
        """JSON-serializable state for ``edgeasd status``."""
        return {
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "k": self.k,
            "n": self.n,
            "alerting": self.alerting,
            "alert_started": iso_time(self._started) if self._started is not None else None,
            "exceeding": self.exceeding,
            "windows": self.windows,
            "alerts": self.alerts,
        }
