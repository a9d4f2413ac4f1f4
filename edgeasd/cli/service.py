"""``edgeasd service install``: write the systemd unit for this installation."""

from __future__ import annotations

import argparse
import pwd
import shlex
import sys
from pathlib import Path

from edgeasd.agent.service import unit as service

#: The configuration the unit runs with (``ExecStart=... --config``).
SYSTEM_CONFIG = Path("/etc/edgeasd/edgeasd.yaml")
#: Where systemd-sysusers reads the package's user definition from.
SYSUSERS_DEST = Path("/usr/lib/sysusers.d/edgeasd.conf")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def next_steps(unit: Path, *, has_user: bool, has_config: bool) -> list[str]:
    """The commands that still separate a written unit from a running service.

    Parameters
    ----------
    unit : pathlib.Path
        The shipped unit used as the template; the sysusers file and the example
        configuration lie beside it (``systemd/``, ``configs/``; for a wheel install under
        ``<prefix>/share/edgeasd/``).
    has_user, has_config : bool
        Whether the ``edgeasd`` user and :data:`SYSTEM_CONFIG` exist already (an upgrade):
        their steps are left out.

    Returns
    -------
    list of str
        Shell commands, in order, each with what it does.
    """
    steps = []
    if not has_user:
        sysusers = unit.with_name("edgeasd.sysusers.conf")
        steps.append(
            f"install -Dm644 {shlex.quote(str(sysusers))} {SYSUSERS_DEST} && systemd-sysusers"
            "    # the edgeasd user, member of audio"
        )
    if not has_config:
        example = unit.parent.parent / "configs" / "edgeasd.yaml"
        steps.append(
            f"install -Dm644 {shlex.quote(str(example))} {SYSTEM_CONFIG}"
            "    # then set source.device (edgeasd devices)"
        )
    steps.append(f"edgeasd config check --config {SYSTEM_CONFIG}")
    steps.append(
        "systemctl daemon-reload && systemctl enable --now edgeasd"
        "    # after an upgrade: systemctl daemon-reload && systemctl start edgeasd"
    )
    return steps


def cmd_install(args: argparse.Namespace) -> int:
    """Write ``<dest>/edgeasd.service`` (or print it) with the real ``ExecStart=``."""
    command = shlex.split(args.exec) if args.exec else service.installed_command()
    hidden = service.hidden_from_service(command[0])
    if hidden:
        what = "warning" if args.force else "error"
        print(
            f"{what}: {command[0]} is under {hidden}, which the unit hides from the service "
            "(ProtectHome=yes, PrivateTmp=yes), so the service could not start it",
            file=sys.stderr,
        )
        if not args.force:
            print(
                "  install edgeasd elsewhere (python3 -m venv /opt/edgeasd && "
                "/opt/edgeasd/bin/pip install .), then run /opt/edgeasd/bin/edgeasd service "
                "install; or pass --force to write this unit anyway",
                file=sys.stderr,
            )
            return 2
    template = service.unit_template()
    if args.dry_run:
        sys.stdout.write(service.render_unit(template.read_text(), command))
        return 0
    path = service.install_unit(args.dest, command)
    print(f"wrote {path} (ExecStart={' '.join(map(shlex.quote, command))} run ...)")
    print("next, as root (systemd/README.md):")
    steps = next_steps(template, has_user=_has_user("edgeasd"), has_config=SYSTEM_CONFIG.is_file())
    for step in steps:
        print(f"  {step}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``edgeasd service ...``."""
    p = subparsers.add_parser(
        "service",
        help="install the systemd unit",
        description="Install edgeasd as a systemd service (see systemd/README.md).",
    )
    sub = p.add_subparsers(dest="service_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser(
        "install",
        help="write edgeasd.service with ExecStart= set to this installation's edgeasd",
        description="Write edgeasd.service with ExecStart= set to the edgeasd you run this "
        "with, then print the steps left (system user, configuration, systemctl). Refuses a "
        "program under /home, /root, /tmp or /var/tmp, which the unit hides from the service.",
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
        help="the ExecStart= program instead of the running edgeasd (e.g. /usr/bin/edgeasd; "
        "default: the running edgeasd)",
    )
    c.add_argument("--dry-run", action="store_true", help="print the unit instead of writing it")
    c.add_argument(
        "--force",
        action="store_true",
        help="write the unit even when its program lies where the service cannot see it "
        "(only a warning then)",
    )
    c.set_defaults(func=cmd_install)
