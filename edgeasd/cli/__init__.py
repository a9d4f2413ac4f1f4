"""The ``edgeasd`` command line: a thin layer that parses arguments and wires stages.

Each command group lives in its own module and exposes ``register(subparsers)``,
which adds its subcommands; each subcommand sets ``func`` (taking the parsed
``argparse.Namespace`` and returning an exit code). Errors derived from
:class:`edgeasd.errors.EdgeasdError` are printed with their help text.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from edgeasd import __version__
from edgeasd.errors import EdgeasdError

#: Modules that contribute subcommands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "edgeasd.cli.run",
    "edgeasd.cli.status",
    "edgeasd.cli.enroll",
    "edgeasd.cli.feedback",
    "edgeasd.cli.checks",
    "edgeasd.cli.score",
    "edgeasd.cli.bank",
    "edgeasd.cli.develop",
    "edgeasd.cli.evaluate",
    "edgeasd.cli.report",
    "edgeasd.cli.service",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available command group."""
    parser = argparse.ArgumentParser(
        prog="edgeasd",
        description="Acoustic machine condition monitoring at the edge.",
    )
    parser.add_argument("--version", action="version", version=f"edgeasd {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    from edgeasd.cli.help import finish

    finish(parser)
    return parser


def setup_logging(level: int) -> None:
    """Log to stderr at ``level``: with sd-daemon priority prefixes when it is the journal.

    Under systemd (:func:`edgeasd.agent.runloop.notify.under_journal`) each line starts with its
    syslog priority (``<4>`` for a warning: alerts, reminders, signal loss) and carries no
    timestamp of its own, so ``journalctl -p warning -u edgeasd`` shows the alerts;
    elsewhere lines carry a timestamp and the level's name.
    """
    from edgeasd.agent.runloop.notify import JournalFormatter, under_journal

    if under_journal():
        handler = logging.StreamHandler()
        handler.setFormatter(JournalFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgeasd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING - 10 * min(args.verbose, 2))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeasdError as exc:
        from edgeasd.terminal import sanitize

        print(sanitize(exc.format(), newlines=True), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`edgeasd tail | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
