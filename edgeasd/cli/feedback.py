"""``edgeasd feedback ALERT normal``: an alert was a false alarm; enroll its episode as normal.

Through the running daemon (monitoring goes on), or directly on the bank when no daemon runs.
The work is :mod:`edgeasd.agent.enrollment.feedback`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import sys

from edgeasd.cli.common import add_config_arg, config_of, paths_of, state_line

#: Seconds a feedback request may take: embedding at most a minute of kept audio takes well
#: under a second; the margin covers a file enrollment it waits behind.
FEEDBACK_TIMEOUT = 300.0


def cmd_feedback(args: argparse.Namespace) -> int:
    """``edgeasd feedback ALERT normal``."""
    from edgeasd.agent.alerts.bank_events import bank_event, emit_direct
    from edgeasd.agent.alerts.episode_audio import check_alert_id
    from edgeasd.agent.control.client import ControlClient
    from edgeasd.agent.control.protocol import DaemonNotRunning
    from edgeasd.agent.enrollment.feedback import check_label, feedback_direct
    from edgeasd.terminal import sanitize

    check_alert_id(args.alert)
    check_label(args.label)
    config = config_of(args)
    paths = paths_of(config)
    try:
        client = ControlClient(paths.control_socket, timeout=FEEDBACK_TIMEOUT)
        result = client.request("feedback", alert=args.alert, label=args.label)
        how = "by the running daemon"
    except DaemonNotRunning:
        from edgeasd.agent.runloop.stages import make_embedder

        paths.ensure()
        result = feedback_direct(config, paths, args.alert, make_embedder(config))
        emit_direct(config, paths, bank_event("feedback", result, "direct"))
        how = "directly (no daemon running)"
    threshold = result.get("threshold")
    print(
        sanitize(
            f"alert {result['alert_id']}: {len(result['ids'])} window(s) of its episode "
            f"enrolled {how} as normal of condition {result['condition']!r}; bank: "
            f"{result['bank_size']} references, threshold "
            f"{'none' if threshold is None else f'{threshold:.4g}'}"
        )
    )
    if result.get("note"):
        print(f"note: {result['note']}")
    print(f"state: {state_line(result)}")
    for warning in result.get("warnings") or ():
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``feedback`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser(
        "feedback",
        help="an alert was a false alarm: enroll its audio as normal",
        description="Enroll the kept audio of an alert's episode as normal operation of its "
        "condition (the nearest reference's domain), through the running daemon without "
        "stopping monitoring. Example: edgeasd feedback 20261207-130501-42 normal",
    )
    add_config_arg(p)
    p.add_argument("alert", metavar="ALERT", help="the alert id (alert_id in alerts.jsonl, tail)")
    p.add_argument("label", metavar="LABEL", choices=("normal",), help="normal: a false alarm")
    p.set_defaults(func=cmd_feedback)
