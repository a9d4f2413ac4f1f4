"""An event as one line for people: ``edgeasd tail`` and the journal.

:func:`format_event` renders what :mod:`edgeasd.agent.alerts.event_log` stores.
"""

from __future__ import annotations

from typing import Any


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_event(event: dict[str, Any]) -> str:
    """One line for people: time, kind, then the event's most telling fields.

    Parameters
    ----------
    event : dict
        An event as written by the sinks (``time``, ``event``, ...).

    Returns
    -------
    str
        For example ``2026-11-28 13:23:01  ALERT      score 4.210 > threshold 2.000
        (bank quantile) | 2 of last 3 windows | window 118``.
    """
    kind = str(event.get("event", "?"))
    stamp = str(event.get("time", "?")).replace("T", " ")[:19]
    rest = {k: v for k, v in event.items() if k not in ("time", "event")}
    parts = []
    if "score" in rest:
        score = rest.pop("score")
        threshold = rest.pop("threshold", None)
        text = f"score {_num(score)}"
        if threshold is not None:
            above = isinstance(score, (int, float)) and score > threshold
            text += f" {'>' if above else '<='} threshold {_num(threshold)}"
        source = rest.pop("threshold_source", None)
        if source:
            text += f" ({source})"
        parts.append(text)
    rate = rest.pop("predicted_false_alarm_rate", None)
    per_day = rest.pop("predicted_false_alarms_per_day", None)
    rest.pop("threshold_rule", None)  # named in threshold_source
    if per_day is not None:
        parts.append(f"forecast {per_day:.2g} false alerts/day")
    elif rate is not None:
        parts.append(f"predicted false alarms {100 * rate:.2g} % of windows")
    provisional = rest.pop("provisional_conditions", None)
    if provisional:
        names = ", ".join(map(str, provisional))
        parts.append(f"provisional: condition {names} commissioning")
    if "exceeding" in rest and "n" in rest:
        parts.append(f"{rest.pop('exceeding')} of last {rest.pop('n')} windows")
        rest.pop("k", None)
    if kind in ("recovered", "reminder") and "duration_seconds" in rest:
        word = "after" if kind == "recovered" else "ongoing for"
        parts.append(f"{word} {rest.pop('duration_seconds')} s")
        rest.pop("started", None)
    if "window_index" in rest:
        parts.append(f"window {rest.pop('window_index')}")
    extra = " ".join(f"{k}={_num(v)}" for k, v in rest.items() if not isinstance(v, dict))
    if extra:
        parts.append(extra)
    return f"{stamp}  {kind.upper():<10} " + " | ".join(parts)
