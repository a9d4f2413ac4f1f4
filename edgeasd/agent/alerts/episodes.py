"""The ongoing episodes (an anomaly alert, a lost signal) and the last alert, kept on disk
so that a restart continues them instead of starting afresh.

Without it a restart during a fault shows a recovery (the MQTT status's ``anomaly`` starts
false, Home Assistant shows "off" until the next alert) and the same fault alerts twice.
The daemon saves ``<state_dir>/episode.json`` (atomically) at every alert, reminder and
recovery and at shutdown, and restores it at start before the sinks are built
(:meth:`edgeasd.agent.alerts.detector.Detector.resume`,
:meth:`~edgeasd.agent.alerts.no_signal.SignalWatch.resume`). The first windows after the
restart then decide as they would have without it: the fault goes on (no new alert) or
the episode recovers (a ``recovered`` event whose duration counts from the first alert).
The anomaly episode is saved with its ``alert_id`` and the number of its windows whose audio
was kept (:class:`edgeasd.agent.alerts.episode_audio.EpisodeRecorder`), so that the
reminders and the recovery after a restart name the same alert (what ``edgeasd feedback``
takes) and the episode's audio stays within its cap.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from edgeasd.agent.alerts.episode_audio import check_alert_id
from edgeasd.atomic import write_json_atomic
from edgeasd.errors import InputError
from edgeasd.events import alert_summary

log = logging.getLogger(__name__)


def load_episodes(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"anomaly": dict | None, "no_signal": dict | None, "last_alert": dict | None}``.

    A missing file is no episode; an unreadable or malformed one is warned about and
    ignored (the agent then starts afresh, as before this file existed).
    """
    empty: dict[str, Any] = {"anomaly": None, "no_signal": None, "last_alert": None}
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read the saved alert episodes (%s); starting afresh", path, exc)
        return empty
    if not isinstance(data, dict):
        log.warning("%s: the saved alert episodes are malformed; starting afresh", path)
        return empty
    out = dict(empty)
    anomaly, no_signal = data.get("anomaly"), data.get("no_signal")
    if isinstance(anomaly, dict) and all(
        isinstance(anomaly.get(k), (int, float)) for k in ("started", "max_score", "noticed")
    ):
        out["anomaly"] = anomaly
    if isinstance(no_signal, dict) and isinstance(no_signal.get("since"), (int, float)):
        out["no_signal"] = no_signal
    if isinstance(data.get("last_alert"), dict):
        out["last_alert"] = data["last_alert"]
    return out


def save_episodes(path: str | os.PathLike[str], episodes: dict[str, Any]) -> None:
    """Write the episodes atomically; a failure is logged (scoring never depends on it)."""
    try:
        write_json_atomic(Path(path), episodes)
    except OSError as exc:
        log.warning("%s: cannot save the alert episodes (%s)", path, exc.strerror or exc)


class EpisodeKeeper:
    """The daemon's side of the episode file: restore at start, save at every change.

    Parameters
    ----------
    path : path-like
        ``<state_dir>/episode.json`` (:attr:`edgeasd.config.paths.Paths.episode_file`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        saved = load_episodes(self.path)
        self._pending: dict[str, Any] | None = saved["anomaly"]
        self._no_signal: dict[str, Any] | None = saved["no_signal"]
        self.last_alert: dict[str, Any] | None = saved["last_alert"]
        #: the daemon's EpisodeRecorder (set once built): the episode's alert id and kept
        #: windows are saved and restored with it
        self.recorder: Any = None

    def restore_signal(self, watch: Any) -> None:
        """Resume a saved no-signal alert in ``watch`` (a :class:`SignalWatch`)."""
        if self._no_signal is not None:
            watch.resume(self._no_signal)
            log.info("the no-signal alert ongoing at the last stop goes on")
        self._no_signal = None

    def restore_detector(self, detector: Any | None) -> None:
        """Resume a saved anomaly alert in ``detector`` once there is one.

        While the bank has no threshold (no detector yet) the saved alert waits: the last
        verdict was an anomaly and none came since, so the status keeps saying so.
        """
        if self._pending is not None and detector is not None:
            detector.resume(self._pending)
            if self.recorder is not None and "alert_id" in self._pending:
                kept = self._pending.get("kept")
                try:
                    self.recorder.resume(
                        check_alert_id(self._pending["alert_id"]),
                        kept if isinstance(kept, int) else 0,
                    )
                except InputError:
                    log.warning("%s: the saved alert id is malformed; ignored", self.path)
            log.info("the anomaly alert ongoing at the last stop goes on (no second alert)")
            self._pending = None

    def status_fields(self, detector: Any | None, watch: Any) -> dict[str, Any]:
        """``anomaly``, ``no_signal`` and ``last_alert`` for the status snapshot."""
        anomaly = detector.alerting if detector is not None else self._pending is not None
        return {
            "anomaly": bool(anomaly),
            "no_signal": bool(watch.alerting),
            "last_alert": self.last_alert,
        }

    def note(self, event: dict[str, Any], detector: Any | None, watch: Any) -> bool:
        """Save after an alert, reminder or recovery (True: the status fields changed)."""
        if event.get("event") not in ("alert", "reminder", "recovered"):
            return False
        if event["event"] == "alert":
            self.last_alert = alert_summary(event)
        self.save(detector, watch)
        return True

    def save(self, detector: Any | None, watch: Any) -> None:
        """Write the current episodes (at every change and at shutdown: the peak grows)."""
        anomaly = detector.episode() if detector is not None else self._pending
        if detector is not None and anomaly is not None and self.recorder is not None:
            anomaly = {**anomaly, **self.recorder.saved()}
        save_episodes(
            self.path,
            {
                "anomaly": anomaly,
                "no_signal": watch.episode(),
                "last_alert": self.last_alert,
            },
        )
