"""``edgeasd report``: an HTML report of a time range (logic in :mod:`edgeasd.report.build`)."""

from __future__ import annotations

import argparse
import sys
import time

from edgeasd.cli.common import add_config_arg, config_of, non_negative, paths_of
from edgeasd.report import DEFAULT_MAX_ALERTS


def cmd_report(args: argparse.Namespace) -> int:
    """``edgeasd report``: write the HTML file and say what it holds."""
    from edgeasd.report.build import DEFAULT_SECONDS, parse_time, render_report, write_report

    now = time.time()
    until = None if args.until is None else parse_time(args.until, now)
    since = (
        parse_time(args.since, now)
        if args.since is not None
        else (now if until is None else until) - DEFAULT_SECONDS
    )
    config = config_of(args)
    limit = None if args.max_alerts == 0 else args.max_alerts
    text, counts = render_report(
        paths_of(config),
        config,
        since,
        until,
        now=now,
        audio=not args.no_audio,
        max_alerts=limit,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    path = write_report(args.output, text)
    shown = f" ({counts['detailed']} in detail)" if counts["detailed"] < counts["alerts"] else ""
    print(
        f"wrote {path}: {counts['windows']} windows, {counts['alerts']} alerts{shown}, "
        f"{counts['images']} images ({len(text) / 1e6:.1f} MB)"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report``."""
    p = subparsers.add_parser(
        "report",
        help="an HTML report: score timeline and, per alert, what changed",
        description="Write a self-contained HTML file (images embedded) with the score "
        "timeline of a time range and, for each alert, the alerted window's log-mel "
        "spectrogram beside its nearest normal reference's and their band-wise difference.",
    )
    add_config_arg(p)
    p.add_argument(
        "--since",
        metavar="TIME",
        help="start: ISO 8601 (2026-11-30T08:00) or a duration before now (24h, 7d) "
        "(default: 24 h before the end of the range)",
    )
    p.add_argument(
        "--until",
        metavar="TIME",
        help="end: ISO 8601 or a duration before now (default: now)",
    )
    p.add_argument(
        "-o",
        "--output",
        default="edgeasd-report.html",
        metavar="PATH",
        help="the HTML file to write (default: edgeasd-report.html)",
    )
    p.add_argument(
        "--max-alerts",
        type=non_negative,
        default=DEFAULT_MAX_ALERTS,
        metavar="N",
        help=f"show the latest N alerts with pictures and audio (about 0.85 MB each), list "
        f"the others in a table; 0: all (default: {DEFAULT_MAX_ALERTS})",
    )
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="leave out the audio players (each alert adds ~0.7 MB: its window and reference)",
    )
    p.set_defaults(func=cmd_report)
