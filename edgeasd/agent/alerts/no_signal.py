"""The no-signal watch: an alert when the input carries no information for too long.

A dead or unplugged microphone, digital silence or a dropout gives windows that cannot be
scored (:attr:`edgeasd.audio.quality.Quality.scorable`). :class:`SignalWatch` turns a run of
them lasting ``quality.no_signal_alert_seconds`` into an ``alert`` of kind ``no_signal`` and,
when sound is back, a ``recovered``; durations are measured on each window's monotonic time,
never on the wall clock, and an ongoing alert is carried over a restart
(:mod:`edgeasd.agent.alerts.episodes`). Kept apart from the score detector
(:mod:`edgeasd.agent.alerts.detector`), whose events it shares (:func:`make_event`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeasd.agent.alerts.detector import make_event
from edgeasd.events import iso_time


@dataclass
class SignalWatch:
    """Alert when the input carries no signal (digital silence, a dead microphone) too long.

    Parameters
    ----------
    alert_seconds : float
        Alert once the windows without signal cover this much time (from the first one's
        start to the current one's end); 0: never alert.
    window_seconds : float
        Length of a window.
    """

    alert_seconds: float
    window_seconds: float
    alerting: bool = field(default=False, init=False)
    _since: float | None = field(default=None, init=False, repr=False)
    _since_clock: float | None = field(default=0.0, init=False, repr=False)

    def episode(self) -> dict[str, float] | None:
        """The ongoing no-signal alert, to carry over a restart (None: none ongoing)."""
        if not self.alerting or self._since is None:
            return None
        return {"since": self._since}

    def resume(self, episode: dict[str, float]) -> None:
        """Continue a no-signal alert a previous run left ongoing (:meth:`episode`)."""
        self.alerting = True
        self._since = float(episode["since"])
        self._since_clock = None  # anchored on the first window of this run

    def update(
        self,
        has_signal: bool,
        time: float,
        window_index: int,
        status: str,
        clock: float | None = None,
    ) -> list:
        """Feed one window; returns ``[]`` or one event record (dict, see :func:`make_event`).

        Parameters
        ----------
        has_signal : bool
            Whether the window carries information (:attr:`Quality.scorable`).
        time : float
            UNIX time of the window's first sample.
        window_index : int
        status : str
            The window's quality status (``dead``, ``silence``, ``invalid``, ...).
        clock : float, optional
            The window's time on a clock that never steps (:attr:`Window.clock`): how long
            the signal has been missing is measured on it; default ``time``.
        """
        now = time if clock is None else float(clock)
        if self._since is not None and self._since_clock is None:  # resumed after a restart
            self._since_clock = now - max(time - self._since, 0.0)
        if has_signal:
            if self._since is None:
                return []
            since, self._since = self._since, None
            if not self.alerting:
                return []
            self.alerting = False
            return [
                make_event(
                    "recovered",
                    time,
                    kind="no_signal",
                    window_index=window_index,
                    started=iso_time(since),
                    duration_seconds=round(max(now - self._since_clock, 0.0), 3),
                )
            ]
        if self._since is None:
            self._since, self._since_clock = time, now
        lasted = now + self.window_seconds - self._since_clock
        if self.alerting or not (0 < self.alert_seconds <= lasted + 1e-6):
            return []
        self.alerting = True
        return [
            make_event(
                "alert",
                time,
                kind="no_signal",
                status=status,
                window_index=window_index,
                started=iso_time(self._since),
                no_signal_seconds=round(lasted, 3),
                alert_seconds=self.alert_seconds,
            )
        ]
