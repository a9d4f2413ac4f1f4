"""``edgeasd service install``: write the systemd unit for this installation."""

from __future__ import annotations

import argparse
import shlex
import sys

from edgeasd.agent.service import unit as service


def cmd_install(args: argparse.Namespace) -> int:
    """Write ``<dest>/edgeasd.service`` (or print it) with the real ``ExecStart=``."""
    command = shlex.split(args.exec) if args.exec else service.installed_command()
    hidden = service.hidden_from_service(command[0])
    if hidden:
        print(
            f"warning: {command[0]} is under {hidden}, which the unit hides from the service "
            "(ProtectHome=yes, PrivateTmp=yes): install edgeasd elsewhere (/opt, /usr/local)",
            file=sys.stderr,
        )
    if args.dry_run:
        text = service.render_unit(service.unit_template().read_text(), command)
        sys.stdout.write(text)
        return 0
    path = service.install_unit(args.dest, command)
    print(f"wrote {path} (ExecStart={' '.join(map(shlex.quote, command))} run ...)")
    print("next: systemctl daemon-reload && systemctl enable --now edgeasd (see systemd/README.md)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``edgeasd service ...``."""
    p = subparsers.add_parser("service", help="install the systemd unit")
    sub = p.add_subparsers(dest="service_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser(
        "install",
        help="write edgeasd.service with ExecStart= set to this installation's edgeasd",
    )
    c.add_argument(
        "--dest",
        default=str(service.DEFAULT_DEST),
        metavar="DIR",
        help="folder to write edgeasd.service to (default: %(default)s)",
    )
    c.add_argument(
        "--exec",
        metavar="COMMAND",
        help="the ExecStart= program instead of the running edgeasd (e.g. /usr/bin/edgeasd)",
    )
    c.add_argument("--dry-run", action="store_true", help="print the unit instead of writing it")
    c.set_defaults(func=cmd_install)
