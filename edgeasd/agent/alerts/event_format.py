"""An event as one line for people: ``edgeasd tail``, the demo and the journal.

:func:`format_event` renders what :mod:`edgeasd.agent.alerts.event_log` stores: the time,
the kind, and what happened in words (the score against the threshold, the reason), never
a ``key=value`` dump. ``edgeasd tail --json`` gives the stored fields.
"""

from __future__ import annotations

from typing import Any

from edgeasd import readable

#: What each signal status means for the person at the machine.
SIGNAL_WORDS = {
    "ok": "sound is back",
    "silence": "silence: digital silence or a microphone that hears nothing",
    "dead": "no signal: a dead or unplugged microphone (a constant level)",
    "dropout": "no signal: dropouts (runs of digital zeros) in the audio",
    "nan": "no signal: invalid samples (NaN) from the capture",
    "embed_failed": "no signal: the model could not embed the window",
    "clipping": "the microphone clips (too loud); windows are still scored",
    "stalled": "capture stalled: no audio arrives",
    "resumed": "capture resumed",
}


def _num(value: Any) -> str:
    """A score or threshold with 3 significant digits (never an exponent), else as it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return readable.score(value)
    return str(value)


def _duration(seconds: Any) -> str:
    return readable.duration(seconds) if isinstance(seconds, (int, float)) else str(seconds)


def _signal_word(status: Any) -> str:
    return SIGNAL_WORDS.get(str(status), f"signal status {status}")


def _anomaly(kind: str, e: dict[str, Any]) -> str:
    score, threshold = e.get("score"), e.get("threshold")
    against = f"score {_num(score)}"
    if threshold is not None:
        above = isinstance(score, (int, float)) and score > threshold
        against += f" {'above' if above else 'below'} the threshold {_num(threshold)}"
    if kind == "alert":
        text = f"the machine sounds different: {against}"
        if "exceeding" in e and "n" in e:
            text += f", in {e['exceeding']} of the last {e['n']} windows"
    elif kind == "reminder":
        text = f"still sounds different after {_duration(e.get('duration_seconds'))}: {against}"
        if e.get("max_score") is not None:
            text += f", peak {_num(e['max_score'])}"
    else:
        text = f"sounds normal again after {_duration(e.get('duration_seconds'))}: {against}"
        if e.get("max_score") is not None:
            text += f", peak was {_num(e['max_score'])}"
    provisional = e.get("provisional_conditions")
    if provisional:  # still commissioning: its threshold is not trusted yet
        text += f"; provisional (condition {', '.join(map(str, provisional))} commissioning)"
    if e.get("clipped"):
        fraction = e.get("clip_fraction")
        share = f" ({100 * fraction:.1f} % of samples)" if isinstance(fraction, float) else ""
        text += f"; the microphone clipped{share}"
    return text


def _describe(kind: str, e: dict[str, Any]) -> str:
    if kind in ("alert", "reminder", "recovered") and e.get("kind") == "no_signal":
        if kind == "alert":
            lasted = _duration(e.get("no_signal_seconds"))
            return f"no signal for {lasted}: {_signal_word(e.get('status')).split(': ', 1)[-1]}"
        return f"signal back after {_duration(e.get('duration_seconds'))}"
    if kind in ("alert", "reminder", "recovered"):
        return _anomaly(kind, e)
    if kind == "signal":
        text = _signal_word(e.get("status"))
        if e.get("previous") not in (None, "ok") or e.get("status") == "ok":
            text += f" (was: {_signal_word(e.get('previous')).split(':', 1)[0]})"
        if e.get("error"):
            text += f" ({e['error']})"
        return text
    if kind == "enrolled":
        ids = e.get("ids") or []
        groups = e.get("groups") or []
        domains = e.get("domains") or {}
        of = f" of condition '{e['domain']}'" if e.get("domain") else ""
        text = f"{len(ids)} normal windows{of} added in {len(groups)} group(s)"
        if e.get("bank_size") is not None:
            per = ", ".join(f"{d} {n}" for d, n in domains.items()) if domains else ""
            text += f"; the bank holds {e['bank_size']}" + (f" ({per})" if per else "")
        if e.get("threshold") is not None:
            text += f"; threshold {_num(e['threshold'])}"
        return text
    if kind == "window":
        text = str(e.get("decision", ""))
        if e.get("score") is not None:
            text += f": score {_num(e['score'])}"
            if e.get("threshold") is not None:
                text += f" (threshold {_num(e['threshold'])})"
        if e.get("reason"):
            text += f" ({e['reason']})"
        return text
    shown = [
        f"{k.replace('_', ' ')} {_num(v)}"
        for k, v in e.items()
        if k not in ("time", "event") and not isinstance(v, (dict, list))
    ]
    return ", ".join(shown)


def format_event(event: dict[str, Any]) -> str:
    """One line for people: time, kind, what happened in words, and the window.

    Parameters
    ----------
    event : dict
        An event as written by the sinks (``time``, ``event``, ...).

    Returns
    -------
    str
        For example ``2026-11-28 13:23:01  ALERT      the machine sounds different: score
        4.21 above the threshold 2.00, in 2 of the last 3 windows (window 118; alert
        20261128-132301-118)``.
    """
    kind = str(event.get("event", "?"))
    stamp = str(event.get("time", "?")).replace("T", " ")[:19]
    text = _describe(kind, event)
    if "window_index" in event:
        alert = event.get("alert_id")  # what `edgeasd feedback ALERT normal` takes
        text += f" (window {event['window_index']}" + (f"; alert {alert})" if alert else ")")
    elif kind == "window" and "index" in event:
        text = f"window {event['index']}: {text}"
    return f"{stamp}  {kind.upper():<10} {text}"
