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
    from edgeasd.agent.control.protocol import DaemonNotRunning, UntrustedDaemon
    from edgeasd.agent.control.status import read_status
    from edgeasd.errors import ControlError

    paths = paths_of(config_of(args))
    try:
        status = ControlClient(paths.control_socket, timeout=5).request("status")
        status["stale"] = False
    except UntrustedDaemon:  # someone else listens there: nothing of theirs is shown
        raise
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
    from edgeasd.cli.status_view import status_text
    from edgeasd.errors import StatusFileError
    from edgeasd.terminal import sanitize

    try:
        text = status_text(s, clean=sanitize)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise StatusFileError(
            f"the daemon's status has a malformed field ({type(exc).__name__}: {exc})",
            help="`edgeasd status --json` shows it raw; restarting the daemon rewrites it",
        ) from None
    return text


def cmd_tail(args: argparse.Namespace) -> int:
    """``edgeasd tail``: alert events (or the score log), optionally following."""
    from edgeasd.agent.alerts.event_format import format_event
    from edgeasd.agent.alerts.event_log import read_events
    from edgeasd.terminal import sanitize

    paths = paths_of(config_of(args))
    path = paths.scores_log if args.scores else paths.alerts_log
    if not args.json:  # JSON lines stay pure for machines
        what = "window scores" if args.scores else "alerts, recoveries, signal changes, enrollments"
        how = "then following new ones (Ctrl-C stops)" if args.follow else "newest last"
        print(sanitize(f"{what} from {path}: the last {args.lines}, {how}"), flush=True)
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
    p.add_argument(
        "-n", "--lines", type=non_negative, default=20, help="how many past events (default: 20)"
    )
    p.add_argument("--scores", action="store_true", help="the per-window score log instead")
    p.set_defaults(func=cmd_tail)
