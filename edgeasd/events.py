"""The records that cross the sink boundary, typed, and their one serialization.

The daemon hands every sink (:class:`edgeasd.interfaces.Sink`: the JSON-lines logs, the
MQTT sink, the metrics) plain JSON-ready dicts: one ``window`` record per window and the
events (``alert``, ``reminder``, ``recovered``, ``signal``, ``enrolled``, ``feedback``,
``removed``, ``restored``). This module
says which fields each kind carries, as :class:`typing.TypedDict` classes (a dict at run
time: nothing is copied or converted on the audio path), and :func:`encode` is the one
place a record becomes JSON text (for the logs and the MQTT payloads).

``tests/test_events.py`` runs the real pipeline and checks that every record it
emits has exactly the declared fields with the declared types.

Every record has ``time`` (ISO 8601 with the UTC offset, :func:`iso_time`: the one time
format of the logs, the MQTT events and the MQTT status) and ``event`` (its kind); fields
whose value is None are left out (:func:`edgeasd.agent.alerts.detector.make_event`), unless
listed in :data:`NULLABLE`.
"""

import json
import math
from datetime import datetime
from typing import Any, Required, TypedDict

from edgeasd.errors import InputError


def iso_time(t: float) -> str:
    """ISO 8601 local time with UTC offset (``+00:00`` form) and milliseconds for a UNIX time."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


class _Base(TypedDict, total=False):
    time: Required[str]
    event: Required[str]


class _Threshold(_Base, total=False):
    """The threshold's rule and predicted false-alarm rate
    (:meth:`edgeasd.agent.alerts.decision.BankState.threshold_facts`)."""

    threshold_rule: str
    predicted_false_alarm_rate: float | None
    predicted_false_alarms_per_day: float | None
    #: conditions whose alerts are provisional (too little audio enrolled), when any
    provisional_conditions: list[str]


class WindowRecord(_Base, total=False):
    """``event: "window"``: one window's quality and verdict (``scores.jsonl``).

    ``decision`` is one of :data:`edgeasd.agent.alerts.decision.STATES` or ``enrolling`` (a
    window of an ``enroll --next`` request, whose own verdict, once the bank scores, is
    ``verdict``).
    """

    index: Required[int]
    level_dbfs: float
    quality: Required[str]
    decision: Required[str]
    threshold: float | None
    clipped: bool
    clip_fraction: float
    reason: str
    needed: int
    score: float
    nearest_id: int
    nearest_domain: str
    embed_ms: float
    score_ms: float
    processing_ms: Required[float]
    verdict: str
    alerts_suppressed: bool


class EpisodeRecord(_Threshold, total=False):
    """``event: "alert" | "reminder" | "recovered"``: an anomaly episode
    (:class:`edgeasd.agent.alerts.detector.Event`, ``kind: "anomaly"``) or a lost signal
    (:class:`edgeasd.agent.alerts.no_signal.SignalWatch`, ``kind: "no_signal"``).

    An anomaly ``alert`` also names itself and its window: ``id`` (unique per alert),
    ``clip`` (the kept audio's file name in ``<log_dir>/alert-audio/``, when audio is
    kept), the nearest reference (``nearest_id``, ``nearest_domain``), ``clipped`` and
    the window's ``level_dbfs``."""

    kind: Required[str]
    window_index: Required[int]
    score: float
    threshold: float
    threshold_source: str
    exceeding: int
    k: int
    n: int
    started: str
    duration_seconds: float
    max_score: float
    clipped: bool
    clip_fraction: float
    id: str
    clip: str
    nearest_id: int
    nearest_domain: str
    level_dbfs: float
    status: str
    no_signal_seconds: float
    alert_seconds: float
    alert_id: str


class SignalRecord(_Base, total=False):
    """``event: "signal"``: the signal status changed (quality, a stalled or resumed
    device); the window's quality measures (:class:`edgeasd.audio.quality.Quality`)."""

    status: Required[str]
    previous: str | None
    window_index: int
    rms_dbfs: float
    peak: float
    clip_fraction: float
    dc_offset: float
    error: str


class EnrolledRecord(_Threshold, total=False):
    """``event: "enrolled"``: references added to the bank
    (:func:`edgeasd.agent.enrollment.enroll.enrollment_result` and the bank state)."""

    ids: Required[list[int]]
    groups: Required[list[str]]
    bank_size: Required[int]
    domains: Required[dict[str, int]]
    state: str
    learning: str | None
    learning_needed: int
    threshold: float | None
    threshold_source: str
    warnings: list[str]
    via: str
    #: :func:`edgeasd.agent.enrollment.guard.check`'s report (checked, threshold, anomalous
    #: windows accepted, new conditions' distance, words)
    guard: dict


class FeedbackRecord(EnrolledRecord, total=False):
    """``event: "feedback"``: an alert's episode enrolled as normal
    (:mod:`edgeasd.agent.enrollment.feedback`)."""

    alert_id: Required[str]
    condition: Required[str]
    windows: int
    note: str


class BankEditRecord(_Threshold, total=False):
    """``event: "removed" | "restored"``: references removed, or a backup generation put
    back (:mod:`edgeasd.agent.enrollment.bank_edits`), and the bank after it."""

    via: Required[str]
    removed: list[int]
    generation: int
    restored: str
    bank_size: Required[int]
    domains: Required[dict[str, int]]
    state: str
    learning: str | None
    learning_needed: int
    threshold: float | None
    threshold_source: str
    warnings: list[str]


#: One record crossing the sink boundary.
Record = (
    WindowRecord | EpisodeRecord | SignalRecord | EnrolledRecord | FeedbackRecord | BankEditRecord
)

#: The record type of each ``event`` kind.
KINDS: dict[str, type] = {
    "window": WindowRecord,
    "alert": EpisodeRecord,
    "reminder": EpisodeRecord,
    "recovered": EpisodeRecord,
    "signal": SignalRecord,
    "enrolled": EnrolledRecord,
    "feedback": FeedbackRecord,
    "removed": BankEditRecord,
    "restored": BankEditRecord,
}


#: Fields of an alert event that name it: the status's ``last_alert`` (MQTT, ``status``).
ALERT_FIELDS = (
    "id", "kind", "time", "score", "threshold", "clip", "nearest_id", "nearest_domain",
    "clipped", "level_dbfs", "window_index",
)  # fmt: skip


def alert_summary(event: EpisodeRecord | dict[str, Any]) -> dict[str, Any]:
    """The :data:`ALERT_FIELDS` an alert event has (``kind`` defaults to ``anomaly``)."""
    out = {k: event[k] for k in ALERT_FIELDS if k in event}
    out.setdefault("kind", "anomaly")
    return out


def _clean(value: Any) -> Any:
    """Replace non-finite floats by None (JSON has no NaN) and numpy scalars by Python ones."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _clean(value.item())
    return value


def encode(record: Record | dict[str, Any]) -> str:
    """One record as a single JSON line (with the newline); NaN/inf become null.

    Raises
    ------
    InputError
        ``record`` is not a dict.
    """
    if not isinstance(record, dict):
        raise InputError(f"an event must be a dict, got {type(record).__name__}")
    return json.dumps(_clean(record), separators=(",", ":"), allow_nan=False) + "\n"
