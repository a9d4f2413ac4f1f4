"""Alert ids and the kept audio of an alert's episode, for the operator's feedback.

Every anomaly ``alert`` event carries an ``alert_id``
(:func:`edgeasd.agent.alerts.alert_audio.alert_id`, also its ``id``): the UTC time and
the index of the window that raised it, e.g. ``20261207-130501-42``. Its ``reminder`` and
``recovered`` events carry the same id. The id is what ``alerts.jsonl``, ``edgeasd tail``,
the report and MQTT show, and what ``edgeasd feedback ALERT normal`` takes.

While an episode lasts the daemon keeps the audio of its windows (:class:`EpisodeKeeper`):
the alerting window and the windows scored after it until the ``recovered`` event, at most
:data:`EPISODE_MAX_WINDOWS` (windows that exceeded the threshold *before* the alert, the
first ``k - 1`` of a k-of-n debounce, are not kept). Each is one FLAC and sidecar of
:mod:`edgeasd.agent.alerts.alert_audio`, with ``alert_id`` and ``episode_window`` (0 = the
alerting window) in the sidecar, under the same ``logs.alert_audio_max_bytes`` cap (the
oldest alerts' audio goes first). :func:`episode_audio` reads an episode back by id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.agent.alerts.alert_audio import AlertAudio, alert_id, alert_records, read_alert_audio
from edgeasd.agent.alerts.detector import Event
from edgeasd.errors import InputError

#: Windows of one episode kept for feedback: 6 windows of the default model's 10 s are one
#: minute, the default ``enrollment.group_seconds`` (one enrollment group): enough to enroll
#: the condition that raised a false alarm, and a long fault episode cannot fill the
#: alert-audio cap on its own (6 x 10 s FLAC at 16 kHz is about 1.9 MB of the 64 MiB default).
EPISODE_MAX_WINDOWS = 6

_ALERT_ID = re.compile(r"^\d{8}-\d{6}-\d{1,12}$")


def check_alert_id(text: Any) -> str:
    """Refuse what is not an alert id (it is matched against sidecars, never used as a path).

    Raises
    ------
    InputError
        Not of the form ``YYYYMMDD-HHMMSS-INDEX``.
    """
    if not isinstance(text, str) or not _ALERT_ID.match(text):
        raise InputError(
            f"{str(text)[:80]!r} is not an alert id (they read like 20261207-130501-42)",
            help="take the id from `edgeasd tail`, alerts.jsonl (alert_id), the report or MQTT",
        )
    return text


@dataclass
class EpisodeKeeper:
    """Which windows of the current episode the daemon keeps (see the module docstring).

    Attributes
    ----------
    alert_id : str
        The episode's alert.
    kept : int
        Windows handed to the alert-audio writer so far.
    """

    alert_id: str
    kept: int = 0

    def take(self) -> int | None:
        """The next window's ``episode_window`` number, or None once the cap is reached."""
        if self.kept >= EPISODE_MAX_WINDOWS:
            return None
        self.kept += 1
        return self.kept - 1


class EpisodeRecorder:
    """The daemon's side: alert ids on an episode's events, and its windows' audio kept.

    Parameters
    ----------
    writer : AlertAudio
        Writes the kept windows off the audio path.
    """

    def __init__(self, writer: AlertAudio) -> None:
        self.writer = writer
        self.current: EpisodeKeeper | None = None
        self._raised: dict[str, Any] = {}  # the current episode's alert record

    def saved(self) -> dict[str, Any]:
        """The current episode's ``alert_id`` and ``kept`` windows, to carry over a restart."""
        if self.current is None:
            return {}
        return {"alert_id": self.current.alert_id, "kept": self.current.kept}

    def resume(self, alert_id: str, kept: int = 0) -> None:
        """Continue the episode a previous run left ongoing (:meth:`saved`): its events keep
        its ``alert_id`` and its windows' audio stays within the cap."""
        self.current = EpisodeKeeper(alert_id, max(0, int(kept)))

    def events(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The detector's events as records, each with its episode's ``alert_id``."""
        out = []
        for event in events:
            fields = event.to_dict()
            if event.event == "alert":
                self.current = EpisodeKeeper(alert_id(event.time, event.window_index))
                self._raised = fields
            if self.current is not None:
                fields["alert_id"] = self.current.alert_id
            out.append(fields)
        return out

    def keep(self, samples: np.ndarray, record: dict[str, Any], events: Sequence[Event]) -> None:
        """Keep a scored window's audio if it belongs to the current episode.

        Parameters
        ----------
        samples : np.ndarray, shape (window_samples,)
        record : dict
            The window's record (``time``, ``score``, ``nearest_id``, ``nearest_domain``...)
            with ``unix_time`` and ``window_index``; the alert's fields are added to the
            alerting window's sidecar.
        events : sequence of Event
            What the detector returned for this window (a ``recovered`` ends the episode).
        """
        episode = self.current
        if episode is None:
            return
        if any(e.event == "recovered" for e in events):
            self.current = None
            return
        number = episode.take()
        if number is None:
            return
        meta = {
            **record,
            **(self._raised if number == 0 else {}),  # the alerting window: the alert's fields
            "event": "alert" if number == 0 else "episode",
            "alert_id": episode.alert_id,
            "episode_window": number,
        }
        self.writer.keep(samples, meta)


@dataclass(frozen=True)
class EpisodeAudio:
    """The kept windows of one alert's episode.

    Attributes
    ----------
    alert_id : str
    records : list of dict
        The sidecars, by ``episode_window``.
    samples : list of np.ndarray, each (window_samples,) float32
    sample_rate : int
    domain : str
        The condition the episode is enrolled into: the alerting window's nearest
        reference's domain (the most common one among the kept windows when the alerting
        window is gone).
    missing_first : bool
        The alerting window itself is gone (the cap deleted it).
    """

    alert_id: str
    records: list[dict[str, Any]]
    samples: list[np.ndarray]
    sample_rate: int
    domain: str
    missing_first: bool


def _alert_logged(events: Iterable[dict[str, Any]], wanted: str) -> bool:
    return any(e.get("event") == "alert" and e.get("alert_id") == wanted for e in events)


def episode_audio(
    directory: str | Path, wanted: str, logged: Iterable[dict[str, Any]] = ()
) -> EpisodeAudio:
    """Read back the kept windows of alert ``wanted``.

    Parameters
    ----------
    directory : path-like
        The alert-audio folder (:attr:`edgeasd.config.paths.Paths.alert_audio_dir`).
    wanted : str
        The alert id (checked with :func:`check_alert_id`).
    logged : iterable of dict
        The events of ``alerts.jsonl``, to tell an alert whose audio is gone from an
        unknown id.

    Raises
    ------
    InputError
        Not an alert id; no such alert; its audio is gone; its audio is unreadable.
    """
    check_alert_id(wanted)
    records = sorted(
        (r for r in alert_records(directory) if r.get("alert_id") == wanted),
        key=lambda r: int(r.get("episode_window", 0)),
    )
    if not records:
        if _alert_logged(logged, wanted):
            raise InputError(
                f"the audio of alert {wanted} is gone: it was deleted to keep the alert-audio "
                "folder under logs.alert_audio_max_bytes (oldest alerts first), or it was "
                "never kept (logs.alert_audio_max_bytes 0)",
                help="enroll recordings of that condition instead (`edgeasd enroll --domain "
                "DOMAIN FILE...` or `--next N` while it runs), and raise "
                "logs.alert_audio_max_bytes to keep more alerts' audio",
            )
        raise InputError(
            f"no alert {wanted}: neither alerts.jsonl nor the kept alert audio knows it",
            help="take the id from `edgeasd tail` or alerts.jsonl (field alert_id)",
        )
    try:
        samples = [read_alert_audio(directory, r) for r in records]
    except Exception as exc:
        raise InputError(
            f"the kept audio of alert {wanted} is unreadable: {exc}",
            help="enroll recordings of that condition instead (`edgeasd enroll`)",
        ) from None
    rates = {int(r["sample_rate"]) for r in records}
    first = records[0]
    missing_first = int(first.get("episode_window", 0)) != 0
    domain = str(first.get("nearest_domain", ""))
    if missing_first or not domain:
        domain = Counter(str(r.get("nearest_domain", "")) for r in records).most_common(1)[0][0]
    if len(rates) != 1 or not domain:
        raise InputError(f"the kept audio of alert {wanted} is inconsistent (rates {rates})")
    return EpisodeAudio(wanted, records, samples, rates.pop(), domain, missing_first)
