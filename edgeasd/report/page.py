"""HTML pieces of the report besides the alert panels: the heading's names, the table of
every alert, an alert's peak-and-duration rows."""

from __future__ import annotations

import html
import socket
from typing import Any

from edgeasd.report.summary import AlertSummary, format_duration, format_time


def peak_and_duration(summary: AlertSummary) -> list[tuple[str, str]]:
    """(label, text) rows: the episode's peak score and its duration (or "at least")."""
    peak = "?" if summary.peak_score is None else f"{summary.peak_score:.3f}"
    duration = format_duration(summary.duration_seconds)
    if summary.ongoing:
        duration = f"at least {duration} (no recovery logged in this range)"
    return [("peak score", peak), ("duration", duration)]


def machine_and_site(config: Any) -> str:
    """``pump1 at plant-a``: the MQTT names of the machine (the host name by default)."""
    machine = config.mqtt.machine or socket.gethostname()
    return f"{machine} at {config.mqtt.site}"


def alert_table(
    alerts: list[dict[str, Any]], summaries: list[AlertSummary], first: int, limit: int | None
) -> str:
    """Every alert of the range in one table: time, kind, peak score, duration."""
    rows = []
    for i, (a, s) in enumerate(zip(alerts, summaries, strict=True)):
        cells = [
            str(i + 1),
            format_time(a.get("time")),
            str(a.get("kind", "anomaly")).replace("_", " "),
            *(v for _, v in peak_and_duration(s)),
            "below" if i >= first else "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("#", "time", "kind", "peak score", "duration", "details")
    )
    note = (
        f"<p>The latest {limit} alerts are shown in detail below; {first} earlier ones only "
        f"here (--max-alerts {len(alerts)} shows all, each adds about 0.85 MB).</p>"
        if first
        else ""
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{note}"
