"""``edgeasd status`` (the daemon's live status, else its last snapshot) and ``edgeasd tail``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgeasd.cli.common import add_config_arg, config_of, non_negative, paths_of


def cmd_status(args: argparse.Namespace) -> int:
    """``edgeasd status``: the daemon's live status, else its last snapshot.

    Exit status: 0 the daemon answered, 3 it is not running (the last snapshot is shown),
    4 it runs but did not answer (busy or stalled; the last snapshot and why are shown).
    """
    from edgeasd.agent.control.client import ControlClient
    from edgeasd.agent.control.protocol import DaemonNotRunning
    from edgeasd.agent.control.status import read_status
    from edgeasd.errors import ControlError

    paths = paths_of(config_of(args))
    try:
        status = ControlClient(paths.control_socket, timeout=5).request("status")
        status["stale"] = False
    except DaemonNotRunning:  # nobody answers on the socket: whatever the pid, it is stale
        status = read_status(paths.status_file, socket_live=False)
        status = status or {"state": "never started", "stale": True}
    except ControlError as exc:  # busy or stalled: show the last snapshot and say why
        status = read_status(paths.status_file) or {"state": "unknown", "stale": True}
        status["note"] = f"the daemon did not answer: {exc.message}"
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print(_format_status(status))
    if status.get("stale"):
        return 3  # not running
    return 4 if status.get("note") else 0  # 4: running but not answering (busy, stalled)


def _format_status(s: dict[str, Any]) -> str:
    """The status for people; every value is :func:`~edgeasd.terminal.sanitize`-d."""
    from edgeasd.errors import StatusFileError
    from edgeasd.terminal import sanitize

    try:
        lines = _status_lines(s)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise StatusFileError(
            f"the daemon's status has a malformed field ({type(exc).__name__}: {exc})",
            help="`edgeasd status --json` shows it raw; restarting the daemon rewrites it",
        ) from None
    return "\n".join(sanitize(line) for line in lines)


def _status_lines(s: dict[str, Any]) -> list[str]:
    state = str(s.get("state", "?")) + (" (not running; last snapshot)" if s.get("stale") else "")
    lines = [f"state:      {state}"]
    if s.get("note"):
        lines.append(f"note:       {s['note']}")
    if not isinstance(s.get("model"), dict):
        return lines
    lines += [
        f"uptime:     {s.get('uptime_seconds', 0):.0f} s (pid {s.get('pid')})",
        f"model:      {s['model']['id']}",
        *(f"  member:   {m}" for m in s["model"].get("members") or ()),
        f"windows:    {s.get('windows', 0)} processed, {s.get('windows_scored', 0)} scored, "
        f"{s.get('alerts', 0)} alerts",
        f"threshold:  {s.get('threshold')}  ({s.get('threshold_source', '-')})",
        f"bank:       {s.get('bank_size', 0)} references ("
        + ", ".join(f"{d}: {n}" for d, n in (s.get("bank") or {}).items())
        + ")",
    ]
    if s.get("decision_state"):
        lines.append(f"decisions:  {s['decision_state']}")
    lines += _format_threshold_report(s.get("threshold_report"))
    if s.get("learning"):
        lines.append(f"learning:   {s['learning']}")
    lines += [f"warning:    {w}" for w in s.get("warnings") or ()]
    if s.get("enrolling"):
        e = s["enrolling"]
        lines.append(f"enrolling:  {e['collected']} of {e['n']}")
        if e.get("alerts"):
            lines.append(f"alerts:     {e['alerts']}")
    last = s.get("last") or {}
    if last:
        score = last.get("score")
        lines.append(
            f"last:       {last.get('time')} {last.get('decision')}"
            + (f" score {score:.3f}" if score is not None else "")
        )
    src = s.get("source") or {}
    if src:
        lines.append("source:     " + ", ".join(f"{k} {v}" for k, v in src.items()))
    for name, health in {**(s.get("logs") or {}), "status.json": s.get("status_file")}.items():
        if isinstance(health, dict) and (health.get("error") or health.get("dropped")):
            now = f"failing now ({health['error']})" if health.get("error") else "writing again"
            lines.append(f"log {name}: {health.get('dropped', 0)} line(s) dropped, {now}")
    return lines


def _format_threshold_report(rep: dict[str, Any] | None) -> list[str]:
    """Status lines of :func:`~edgeasd.agent.alerts.threshold_policy.threshold_report`.

    None without one.
    """
    from edgeasd.agent.alerts.threshold_policy import report_lines

    return [f"calibrate:  {line}" for line in report_lines(rep)]


def cmd_tail(args: argparse.Namespace) -> int:
    """``edgeasd tail``: alert events (or the score log), optionally following."""
    from edgeasd.agent.alerts.event_format import format_event
    from edgeasd.agent.alerts.event_log import read_events
    from edgeasd.terminal import sanitize

    paths = paths_of(config_of(args))
    path = paths.scores_log if args.scores else paths.alerts_log
    try:
        for event in read_events(path, follow=args.follow, last=args.lines):
            # JSON escapes control characters itself; the human format is sanitized
            print(json.dumps(event) if args.json else sanitize(format_event(event)), flush=True)
    except BrokenPipeError:  # `edgeasd tail | head`
        sys.stderr.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``status`` and ``tail`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser("status", help="the daemon's state, last score, bank, model")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("tail", help="show alerts (newest last)")
    add_config_arg(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="print the raw JSON lines")
    p.add_argument("-n", "--lines", type=non_negative, default=20, help="how many past events (20)")
    p.add_argument("--scores", action="store_true", help="the per-window score log instead")
    p.set_defaults(func=cmd_tail)
