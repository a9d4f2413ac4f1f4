"""The report's "Bank changes" table: every enrollment, feedback, removal and restore.

One row per bank-change event of ``alerts.jsonl``
(:mod:`edgeasd.agent.alerts.bank_events`), so that every step of the threshold in the
timeline has its cause next to it: when, what changed, through the daemon or directly, and
the bank and threshold after it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from edgeasd.agent.alerts.bank_events import KINDS


def describe(event: dict[str, Any]) -> str:
    """What one bank-change event changed, in words."""
    kind = event.get("event")
    if kind == "feedback":
        return (
            f"alert {event.get('alert_id')} confirmed normal: {len(event.get('ids') or ())} "
            f"window(s) enrolled into condition {event.get('condition')!r}"
        )
    if kind == "enrolled":
        return (
            f"+{len(event.get('ids') or ())} references in "
            f"{len(event.get('groups') or ())} group(s)"
            + (" (windows above the threshold accepted)" if _accepted(event) else "")
        )
    if kind == "removed":
        return f"removed references {', '.join(map(str, event.get('removed') or ()))}"
    if kind == "restored":
        return f"restored {event.get('restored')}"
    return str(kind)


def _accepted(event: dict[str, Any]) -> bool:
    return bool((event.get("guard") or {}).get("anomalous"))


def bank_changes_html(
    events: Sequence[dict[str, Any]], fmt_time: Callable[[Any], str]
) -> list[str]:
    """The section's HTML parts (a heading and a table, or a line saying there were none)."""
    changes = [e for e in events if e.get("event") in KINDS]
    if not changes:
        return ["<h2>Bank changes</h2><p>No change of the reference bank in this range.</p>"]
    rows = []
    for e in changes:
        threshold = e.get("threshold")
        after = f"{e.get('bank_size', '?')} references, threshold " + (
            f"{threshold:.4g}" if isinstance(threshold, (int, float)) else "none"
        )
        cells = (fmt_time(e.get("time")), e.get("event"), e.get("via", ""), describe(e), after)
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("time", "change", "via", "what", "bank after"))
    return ["<h2>Bank changes</h2>", f"<table><tr>{head}</tr>{''.join(rows)}</table>"]
