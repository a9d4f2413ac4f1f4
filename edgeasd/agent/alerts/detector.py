"""The detector: a single threshold with a k-of-n debounce, raising alert/recovered events.

A window *exceeds* when its normalized score is strictly above the threshold. The
detector alerts on the rising edge, when at least ``k`` of the last ``n`` scored windows
exceed, and reports ``recovered`` when, while alerting, fewer than ``k`` of the last
``n`` exceed. Windows that signal-quality checks flagged are skipped (pass
``score=None``): they count neither as normal nor as anomalous.

The detector keeps its state for as long as the daemon runs: a new threshold (after an
enrollment or a reload) is set in place (:meth:`Detector.set_threshold`), so that one
continuing episode gives one ``alert`` and one ``recovered``. While an episode lasts, a
``reminder`` repeats every ``reminder_seconds`` with the episode's peak score.

:mod:`~edgeasd.agent.alerts.no_signal` does the same for a dead input: windows without signal
that last ``alert_seconds`` give an ``alert`` of kind ``no_signal`` and, when sound is back, a
``recovered`` of kind ``no_signal``. Anomaly events carry ``kind: "anomaly"``.

Durations (the reminder interval, how long no signal lasted, ``duration_seconds``) are
measured on each window's monotonic time (:attr:`edgeasd.audio.windower.Window.clock`),
never on the wall clock: a step of the system clock moves the stamps people read, not the
durations (issue 20: a backward step of D delayed reminders and the no-signal alert by D and
made ``duration_seconds`` negative).

Both carry an ongoing episode over a restart: :meth:`Detector.episode` /
:meth:`Detector.resume` (and the same on
``SignalWatch``), saved and restored by
:mod:`edgeasd.agent.alerts.episodes`. The episode is saved in wall-clock stamps (a new
run's monotonic clock has another origin) and re-anchored on the first window after the
restart.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeasd.errors import InputError
from edgeasd.events import iso_time

__all__ = ["Detector", "Event", "iso_time", "make_event"]


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
        ``"alert"``, ``"reminder"`` (an episode still going on) or ``"recovered"``.
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
        ``reminder``/``recovered``: UNIX time of the alert's window.
    max_score : float, optional
        ``reminder``/``recovered``: the episode's peak score so far.
    kind : str
        ``"anomaly"`` (the no-signal watch's events are ``"no_signal"``).
    flags : dict, optional
        Flags of the triggering window, merged into the record (``clipped``,
        ``clip_fraction``).
    threshold_facts : dict, optional
        The threshold's rule and predicted false-alarm rate, merged into the record
        (:meth:`edgeasd.agent.alerts.decision.BankState.threshold_facts`).
    duration : float, optional
        ``reminder``/``recovered``: seconds since the alert, on the monotonic clock
        (``duration_seconds``; never negative, whatever the wall clock did).
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
    kind: str = "anomaly"
    flags: dict[str, Any] | None = None
    threshold_facts: dict[str, Any] | None = None
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as sinks write it (see :func:`make_event`), times in ISO 8601."""
        fields = asdict(self)
        del fields["event"], fields["time"], fields["flags"], fields["threshold_facts"]
        del fields["duration"]
        fields.update(self.threshold_facts or {})
        fields.update(self.flags or {})
        if self.started is not None:
            fields["started"] = iso_time(self.started)
            lasted = self.time - self.started if self.duration is None else self.duration
            fields["duration_seconds"] = round(max(lasted, 0.0), 3)
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
    reminder_seconds : float
        While alerting, repeat a ``reminder`` event when this much time (on the windows'
        monotonic clock) passed since the alert or the last reminder; 0: never.
    threshold_facts : dict, optional
        The threshold's rule and predicted false-alarm rate, copied into every event.
    """

    threshold: float
    k: int = 1
    n: int = 1
    threshold_source: str = ""
    reminder_seconds: float = 0.0
    threshold_facts: dict[str, Any] | None = None
    alerting: bool = field(default=False, init=False)
    windows: int = field(default=0, init=False)
    alerts: int = field(default=0, init=False)
    _recent: deque[bool] = field(init=False, repr=False)
    _started: float | None = field(default=None, init=False, repr=False)
    _started_clock: float | None = field(default=0.0, init=False, repr=False)
    _max_score: float = field(default=-math.inf, init=False, repr=False)
    _noticed: float = field(default=-math.inf, init=False, repr=False)

    def __post_init__(self) -> None:
        self.threshold = _check_threshold(self.threshold)
        self._recent = deque(maxlen=1)
        self.set_debounce(self.k, self.n, self.reminder_seconds)

    def set_debounce(self, k: int, n: int, reminder_seconds: float | None = None) -> None:
        """Change ``k``, ``n`` (and ``reminder_seconds``) in place (a reload).

        The last ``n`` exceedances and an ongoing alert are kept, so a reload never
        raises a second alert for a continuing episode.
        """
        for name, value in (("k", k), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if k > n:
            raise InputError(f"k ({k}) must not exceed n ({n})")
        if reminder_seconds is not None:
            if not (isinstance(reminder_seconds, (int, float)) and reminder_seconds >= 0):
                raise InputError(f"reminder_seconds must be >= 0, got {reminder_seconds!r}")
            self.reminder_seconds = float(reminder_seconds)
        self.k, self.n = k, n
        self._recent = deque(self._recent, maxlen=n)

    @property
    def exceeding(self) -> int:
        """How many of the last ``n`` scored windows exceeded."""
        return sum(self._recent)

    def set_threshold(
        self,
        threshold: float,
        threshold_source: str = "",
        threshold_facts: dict[str, Any] | None = None,
    ) -> None:
        """Change the threshold (after an enrollment recalibrated it); history is kept.

        ``threshold_facts`` (rule, predicted false-alarm rate) is copied into every event.
        """
        self.threshold = _check_threshold(threshold)
        self.threshold_source = threshold_source
        self.threshold_facts = dict(threshold_facts or {})

    def episode(self) -> dict[str, float] | None:
        """The ongoing alert, to carry over a restart (None: none ongoing); see :meth:`resume`."""
        if not self.alerting or self._started is None:
            return None
        if self._started_clock is None:  # resumed, no window yet: still on the wall clock
            noticed = self._noticed
        else:
            noticed = self._started + (self._noticed - self._started_clock)  # on the wall clock
        return {"started": self._started, "max_score": self._max_score, "noticed": noticed}

    def resume(self, episode: dict[str, float]) -> None:
        """Continue an alert a previous run left ongoing (:meth:`episode`): no second alert.

        The k-of-n history starts with ``k`` exceeding windows, so the episode recovers
        after as many normal windows as it would have without the restart, and its
        ``recovered`` counts the duration from the first alert.
        """
        self.alerting = True
        self._started = float(episode["started"])
        self._max_score = float(episode["max_score"])
        self._noticed = float(episode.get("noticed", self._started))  # wall, until anchored
        self._started_clock = None  # anchored on the first window of this run (update)
        self._recent = deque([True] * self.k, maxlen=self.n)

    def reset(self) -> None:
        """Forget the history and any ongoing alert (no event is emitted)."""
        self._recent.clear()
        self.alerting = False
        self._started = None
        self._max_score = -math.inf

    def update(
        self,
        score: float | None,
        time: float,
        window_index: int,
        flags: dict[str, Any] | None = None,
        clock: float | None = None,
    ) -> list[Event]:
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
        flags : dict, optional
            The window's flags (``{"clipped": True, "clip_fraction": 0.02}``), copied into
            an event it triggers.
        clock : float, optional
            The window's time on a clock that never steps (:attr:`Window.clock`), for the
            reminder interval and ``duration_seconds``; default ``time``.

        Returns
        -------
        list of Event
            ``[]``, ``[alert]`` on the rising edge, ``[reminder]`` while alerting every
            ``reminder_seconds``, or ``[recovered]`` on the falling edge.

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
        now = time if clock is None else float(clock)
        if self._started is not None and self._started_clock is None:  # resumed: anchor
            self._started_clock = now - max(time - self._started, 0.0)
            self._noticed = now - max(time - self._noticed, 0.0)
        if not self.alerting and exceeding >= self.k:
            self.alerting, self._started, self._max_score = True, time, score
            self._started_clock = self._noticed = now
            self.alerts += 1
            return [self._event("alert", score, time, window_index, exceeding, flags=flags)]
        if not self.alerting:
            return []
        kind = "recovered" if exceeding < self.k else "reminder"
        if kind == "reminder" and not (
            self.reminder_seconds > 0 and now - self._noticed >= self.reminder_seconds
        ):
            return []
        event = self._event(
            kind,
            score,
            time,
            window_index,
            exceeding,
            started=self._started,
            max_score=self._max_score,
            flags=flags,
            duration=max(now - self._started_clock, 0.0),
        )
        self._noticed = now
        if kind == "recovered":
            self.alerting, self._started, self._max_score = False, None, -math.inf
        return [event]

    def _event(self, kind: str, score: float, time: float, index: int, exc: int, **kw) -> Event:
        return Event(
            event=kind,
            time=time,
            window_index=index,
            score=score,
            threshold=self.threshold,
            threshold_source=self.threshold_source,
            threshold_facts=self.threshold_facts or None,
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
            "peak_score": self._max_score if self.alerting else None,
            "exceeding": self.exceeding,
            "windows": self.windows,
            "alerts": self.alerts,
        }
