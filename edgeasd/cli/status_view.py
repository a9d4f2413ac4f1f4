"""``edgeasd status`` for people: one word for the state, then one aligned line per topic.

The text is built from the daemon's snapshot (:mod:`edgeasd.agent.control.status`) by the
sections of :data:`SECTIONS`, in order; each returns ``(label, text)`` rows. Another topic
(the commissioning of a condition, say) adds its own section with :func:`add_section`.
Values go through :mod:`edgeasd.readable`: no ``None``, no ``()``, no exponents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from edgeasd import readable

Row = tuple[str, str]
#: A section: the snapshot and the current UNIX time in, rows out.
Section = Callable[[dict[str, Any], float], Iterable[Row]]

#: The agent's state in one word, from the snapshot's ``state`` and its freshness.
STATE_WORDS = ("starting", "learning", "enrolling", "running", "stopped", "busy", "unknown")


def state_word(s: dict[str, Any]) -> str:
    """One of :data:`STATE_WORDS`."""
    if s.get("stale"):
        return "stopped"
    if s.get("note"):
        return "busy"
    if s.get("enrolling"):
        return "enrolling"
    state = str(s.get("state", "unknown"))
    return state if state in STATE_WORDS else "unknown"


def _unix(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def _state(s: dict[str, Any], now: float) -> Iterable[Row]:
    yield "state", state_word(s)
    if s.get("note"):
        yield "note", str(s["note"])
    if s.get("stale"):
        if s.get("state") == "never started":
            yield "note", "no daemon has run with this configuration yet (edgeasd run)"
        elif s.get("updated"):
            yield "last seen", readable.clock(float(s["updated"]), now) + "; its last snapshot:"
        else:
            yield "note", "not running; its last snapshot:"
    elif s.get("started"):
        yield (
            "running since",
            f"{readable.clock(float(s['started']))} "
            f"({readable.duration(now - float(s['started']))}, pid {s.get('pid')})",
        )


def _model(s: dict[str, Any], now: float) -> Iterable[Row]:
    model = s.get("model")
    if not isinstance(model, dict) or not model.get("id"):
        return
    members = model.get("members") or []
    if members:
        yield "model", f"{model['id']}: the average of " + ", ".join(map(str, members))
    else:
        yield "model", str(model["id"])


def _bank(s: dict[str, Any], now: float) -> Iterable[Row]:
    if "bank_size" not in s:
        return
    per_domain = s.get("bank") or {}
    detail = ", ".join(f"{d} {readable.count(n)}" for d, n in per_domain.items())
    yield (
        "bank",
        f"{readable.count(s['bank_size'])} references" + (f" ({detail})" if detail else ""),
    )


def _threshold(s: dict[str, Any], now: float) -> Iterable[Row]:
    if "threshold_source" not in s and "threshold" not in s:
        return
    source = s.get("threshold_source")
    if s.get("threshold") is None:
        yield "threshold", "none yet" + (f": {source}" if source else "")
    else:
        yield "threshold", readable.score(s["threshold"]) + (f" ({source})" if source else "")
    rep = s.get("threshold_report") or {}
    forecast = rep.get("forecast") or {}
    if forecast.get("words"):  # false alerts a day, or what it needs to be known
        yield "forecast", str(forecast["words"])
    said = {str(c.get("words")) for c in s.get("commissioning") or ()}
    if rep.get("warning") and str(rep["warning"]) not in said:  # not twice (see conditions)
        yield "calibrate", str(rep["warning"])


def _conditions(s: dict[str, Any], now: float) -> Iterable[Row]:
    """Commissioning per condition (:func:`edgeasd.agent.alerts.commissioning.conditions`)."""
    for c in s.get("commissioning") or ():
        yield "condition", str(c["words"])


def _activity(s: dict[str, Any], now: float) -> Iterable[Row]:
    if "windows" not in s:
        return
    yield (
        "windows",
        f"{readable.count(s.get('windows', 0))} processed, "
        f"{readable.count(s.get('windows_scored', 0))} scored, "
        f"{readable.count(s.get('alerts', 0))} alert{'' if s.get('alerts') == 1 else 's'}",
    )
    last = s.get("last") or {}
    if not last:
        yield "last window", "none yet"
        return
    t = _unix(last.get("time"))
    when = readable.clock(t, now) if t is not None else str(last.get("time"))
    what = str(last.get("decision", ""))
    if last.get("score") is not None:
        threshold = last.get("threshold")
        against = "" if threshold is None else f" against {readable.score(threshold)}"
        what += f", score {readable.score(last['score'])}{against}"
    yield "last window", f"{when}: {what}"


def _learning(s: dict[str, Any], now: float) -> Iterable[Row]:
    if s.get("learning"):
        yield "learning", str(s["learning"])
    for warning in s.get("warnings") or ():
        yield "warning", str(warning)


def _enrolling(s: dict[str, Any], now: float) -> Iterable[Row]:
    e = s.get("enrolling")
    if not e:
        return
    n, got = int(e.get("n", 0)), int(e.get("collected", 0))
    window = float((s.get("model") or {}).get("window_seconds") or 0)
    minutes = ""
    if window > 0 and n:
        minutes = f" ({readable.duration(got * window)} of {readable.duration(n * window)})"
    domain = f" of condition '{e['domain']}'" if e.get("domain") else ""
    yield "enrolling", f"{got} of {n} windows{domain}{minutes}; alerts suppressed meanwhile"


def _source(s: dict[str, Any], now: float) -> Iterable[Row]:
    src = s.get("source") or {}
    if not src:
        return
    kind = str(src.get("kind", "source"))
    name = src.get("device") or src.get("current_file") or src.get("machine")
    head = f"{kind} '{name}'" if name else kind
    rate = (s.get("model") or {}).get("sample_rate")
    parts = []
    if src.get("frames") is not None and rate:
        parts.append(f"{readable.duration(float(src['frames']) / float(rate))} of audio")
    for key in ("overflows", "dropped"):
        if src.get(key):
            parts.append(f"{readable.count(src[key])} {key}")
    yield "source", head + (": " + ", ".join(parts) if parts else "")


def _fleet(s: dict[str, Any], now: float) -> Iterable[Row]:
    fleet = s.get("fleet") or {}
    mqtt = fleet.get("mqtt")
    if mqtt:
        link = "connected to" if mqtt.get("connected") else "NOT connected to"
        yield (
            "mqtt",
            f"{link} {mqtt.get('broker')}; {readable.count(mqtt.get('queued', 0))} events "
            f"queued on disk, {readable.count(mqtt.get('dropped', 0))} dropped",
        )
    metrics = fleet.get("metrics")
    if metrics:
        targets = [t for t in (metrics.get("textfile"), metrics.get("http")) if t]
        yield "metrics", " and ".join(map(str, targets))


def _logs(s: dict[str, Any], now: float) -> Iterable[Row]:
    logs = {**(s.get("logs") or {}), "status.json": s.get("status_file")}
    for name, health in logs.items():
        if isinstance(health, dict) and (health.get("error") or health.get("dropped")):
            state = f"failing now ({health['error']})" if health.get("error") else "writing again"
            yield (
                f"log {name}",
                f"{readable.count(health.get('dropped', 0))} lines dropped, {state}",
            )


#: The sections in display order, by name (see :func:`add_section`).
SECTIONS: list[tuple[str, Section]] = [
    ("state", _state),
    ("model", _model),
    ("bank", _bank),
    ("threshold", _threshold),
    ("conditions", _conditions),
    ("learning", _learning),
    ("enrolling", _enrolling),
    ("activity", _activity),
    ("source", _source),
    ("fleet", _fleet),
    ("logs", _logs),
]


def add_section(name: str, section: Section, *, after: str) -> None:
    """Show ``section``'s rows after those of the section named ``after``.

    Raises
    ------
    KeyError
        No section is named ``after``.
    """
    names = [n for n, _ in SECTIONS]
    if after not in names:
        raise KeyError(f"no status section named {after!r} (sections: {', '.join(names)})")
    SECTIONS.insert(names.index(after) + 1, (name, section))


def status_rows(s: dict[str, Any], now: float | None = None) -> list[Row]:
    """Every section's rows for snapshot ``s`` at ``now`` (default: the current time)."""
    now = time.time() if now is None else now
    rows: list[Row] = []
    for _, section in SECTIONS:
        rows.extend(section(s, now))
    return rows


def status_text(
    s: dict[str, Any], now: float | None = None, clean: Callable[[str], str] = str
) -> str:
    """The rows as aligned ``label:  text`` lines.

    ``clean`` is applied to every label and text first (the CLI passes
    :func:`edgeasd.terminal.sanitize`: a value can never start a line of its own).
    """
    rows = [(clean(label), clean(text)) for label, text in status_rows(s, now)]
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label + ':':<{width}}{text}" for label, text in rows)
