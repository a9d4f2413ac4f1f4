"""Where the daemon's events go: :class:`EventSinks`.

Windows go to the score log, every other event to the alert log (both
:class:`~edgeasd.agent.alerts.event_log.JsonlLog`) and to the journal as one line for people
(:func:`~edgeasd.agent.alerts.event_format.format_event`); then every record goes to the fleet
observers (MQTT, metrics).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edgeasd.agent.alerts.event_format import format_event
from edgeasd.agent.alerts.event_log import JsonlLog
from edgeasd.events import Record
from edgeasd.terminal import sanitize

if TYPE_CHECKING:
    from edgeasd.config import Config
    from edgeasd.config.paths import Paths
    from edgeasd.interfaces import Sink

log = logging.getLogger(__name__)


class EventSinks:
    """Routes events: windows to the score log, everything else to the alert log and stdout.

    Parameters
    ----------
    alerts_path, scores_path : path-like
        ``alerts.jsonl`` and ``scores.jsonl`` (see :class:`edgeasd.config.paths.Paths`).
    max_bytes, backups : int
        Rotation of each log (see :class:`JsonlLog`).
    logger : logging.Logger, optional
        Receives :func:`format_event` lines: ``alert``, ``reminder`` and ``signal`` at
        WARNING, other non-window events at INFO, windows at DEBUG (default: this module's
        logger).
    observers : sequence, optional
        Objects with ``emit(event)`` and ``close()`` that also get every record and event
        after the logs (the MQTT sink, the metrics: :mod:`edgeasd.fleet.observers`). An observer
        that raises is logged, never stops the logs nor the daemon.
    """

    def __init__(
        self,
        alerts_path: str | os.PathLike[str],
        scores_path: str | os.PathLike[str],
        max_bytes: int = 10 * 2**20,
        backups: int = 5,
        logger: logging.Logger | None = None,
        observers: Sequence[Sink] = (),
    ) -> None:
        self.alerts = JsonlLog(alerts_path, max_bytes, backups)
        self.scores = JsonlLog(scores_path, max_bytes, backups)
        self.logger = logger or log
        self.observers = list(observers)
        self._failing: set[int] = set()  # observers whose last emit raised (logged once)

    @classmethod
    def from_config(
        cls,
        config: Config,
        paths: Paths,
        logger: logging.Logger | None = None,
        *,
        status: Callable[[], dict[str, Any]] | None = None,
        previous: EventSinks | None = None,
    ):
        """Sinks at ``paths.alerts_log``/``paths.scores_log`` with ``config.logs`` rotation.

        Plus the MQTT sink and metrics the config enables
        (:func:`edgeasd.fleet.observers.observers`;
        ``status`` feeds their status data, ``previous`` are the sinks a reload replaces,
        whose unchanged observers are carried over).
        """
        from edgeasd.fleet import observers as fleet

        observers = fleet.observers(
            config, paths, status, previous.observers if previous is not None else None
        )
        return cls(
            paths.alerts_log,
            paths.scores_log,
            config.logs.max_bytes,
            config.logs.backups,
            logger,
            observers,
        )

    def emit(self, event: Record) -> None:
        """Write one event to its log and the operational log, then hand it to the observers."""
        self._emit_logs(event)
        for obs in self.observers:
            try:
                obs.emit(event)
            except Exception:
                if id(obs) not in self._failing:
                    self.logger.exception("%s failed to take an event", type(obs).__name__)
                self._failing.add(id(obs))
            else:
                self._failing.discard(id(obs))

    def _emit_logs(self, event: Record) -> None:
        """Write one event to its log and the operational log (a full disk drops the line)."""
        kind = event.get("event")
        if kind == "window":
            self.scores.write(event)
            if self.logger.isEnabledFor(logging.DEBUG):
                self.logger.debug("%s", format_event(event))
            return
        self.alerts.write(event)
        level = logging.WARNING if kind in ("alert", "reminder", "signal") else logging.INFO
        self.logger.log(level, "%s", sanitize(format_event(event)))  # tags are user text

    def health(self) -> dict[str, dict[str, Any]]:
        """Per log: lines ``dropped`` to write errors and the current ``error`` (or None)."""
        return {"alerts": self.alerts.health, "scores": self.scores.health}

    def flush(self) -> None:
        """Force both logs to disk."""
        self.alerts.flush()
        self.scores.flush()

    def close(self) -> None:
        """Close both logs and the observers (except those a reload carried over)."""
        self.alerts.close()
        self.scores.close()
        for obs in self.observers:
            try:
                obs.close()
            except Exception:
                self.logger.exception("closing %s failed", type(obs).__name__)
        self.observers = []
