"""``edgeasd bank``: list, summarize, remove, restore and rebuild the reference bank.

``rebuild`` changes the bank on disk under its write lock; it refuses while the daemon runs
(its in-memory bank would overwrite the change): stop it first. ``remove`` and ``restore``
go through the running daemon (:mod:`edgeasd.cli.bank_edit`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from edgeasd import readable
from edgeasd.cli.common import (
    add_config_arg,
    bank_notes_in_words,
    config_of,
    hop_seconds,
    paths_of,
)
from edgeasd.errors import BankError, ControlError


def _load(config: Any) -> Any:
    from edgeasd.scoring import load_bank

    path = paths_of(config).bank
    if not path.exists():
        raise BankError(
            f"no reference bank at {path}",
            help="enroll normal operation first: `edgeasd enroll FILE...` or "
            "`edgeasd enroll --next N`",
        )
    return load_bank(path)


def _refuse_if_running(paths: Any, what: str) -> None:
    from edgeasd.agent.control.client import ControlClient
    from edgeasd.agent.control.protocol import DaemonNotRunning

    try:
        ControlClient(paths.control_socket, timeout=5).request("status")
    except DaemonNotRunning:
        return
    raise ControlError(
        f"the daemon is running: `bank {what}` must not change the bank under it",
        help="stop it (systemctl stop edgeasd), run the command, start it again",
    )


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_list(args: argparse.Namespace) -> int:
    """``bank list``: one line per reference."""
    bank = _load(config_of(args))
    rows = [
        {
            "id": int(i),
            "domain": str(d),
            "group": str(g),
            "added": _iso(float(t)),
            "density": float(r),
        }
        for i, d, g, t, r in zip(
            bank.ids_, bank.domains_, bank.groups_, bank.added_at_, bank.density_, strict=True
        )
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'id':>6}  {'domain':<12} {'added':<19}  {'density':>10}  group")
    for r in rows:
        print(
            f"{r['id']:>6}  {r['domain']:<12} {r['added']:<19}  {r['density']:>10.4g}  {r['group']}"
        )
    return 0


def bank_summary_dict(bank: Any, config: Any) -> dict[str, Any]:
    """Per-domain counts, groups and density, the decision state, threshold and model.

    The state and threshold are :func:`edgeasd.agent.alerts.decision.bank_state`'s, the same the
    daemon and ``edgeasd score`` decide with (``state``: learning, uncalibrated or ready).
    """
    import numpy as np  # here: the command line parses without numpy (status, tail)

    from edgeasd.agent.alerts import decision

    domains, groups, density = bank.domains_, bank.groups_, bank.density_
    hop = hop_seconds(config)
    state = decision.bank_state(bank, config, hop)
    report = state.threshold_report()  # computed once, with the state
    return {
        "references": len(bank),
        "model_id": bank.meta.get("model_id"),
        **state.as_dict(),
        "min_references": config.scoring.min_references,
        "max_references": config.scoring.max_references,
        "reductions": bank.meta.get("reductions"),
        "threshold_report": report,
        "domains": {
            str(d): {
                "references": int(np.sum(domains == d)),
                "groups": len(set(groups[domains == d])),
                "median_density": float(np.median(density[domains == d])),
            }
            for d in sorted(set(domains))
        },
    }


def _cap_lines(s: dict[str, Any]) -> list[str]:
    """``bank summary`` lines on ``scoring.max_references`` and the reductions it caused."""
    from edgeasd.scoring.reduce import HYSTERESIS

    cap, red = s["max_references"], s["reductions"]
    if cap is None:
        lines = ["cap: none (scoring.max_references: null): the bank grows without bound"]
    else:
        lines = [
            f"cap: {s['references']} of at most {cap} references (scoring.max_references); "
            f"above it the most redundant go, down to {int(HYSTERESIS * cap)}"
        ]
    if red:
        lost = red.get("groups_lost", 0)
        lines.append(
            f"reduced {red['count']} time(s), {red['removed']} near-duplicate reference(s) "
            f"removed in all, last {_iso(red['last_unix'])} ({red['last_before']} -> "
            f"{red['last_after']}); "
            + (
                f"{lost} recording group(s) no longer represented"
                if lost
                else "every recording group and condition still represented"
            )
        )
    return lines


def cmd_summary(args: argparse.Namespace) -> int:
    """``bank summary``: per domain tag."""
    config = config_of(args)
    with bank_notes_in_words():
        s = bank_summary_dict(_load(config), config)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    from edgeasd.cli.common import state_line

    print(f"{s['references']} references, model {s['model_id']}")
    for line in _cap_lines(s):
        print(line)
    print(f"threshold {readable.score(s['threshold'])} ({s['threshold_source']})")
    from edgeasd.agent.alerts.threshold_policy import report_lines

    print(f"state: {state_line(s)}")
    for warning in s["warnings"]:
        print(f"warning: {warning}")
    for line in report_lines(s["threshold_report"]):
        print(line)
    print(f"{'domain':<16} {'refs':>6} {'groups':>7} {'median density':>15}")
    for name, d in s["domains"].items():
        density = readable.score(d["median_density"])
        print(f"{name:<16} {d['references']:>6} {d['groups']:>7} {density:>15}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    """``bank rebuild``: re-embed the kept enrollment audio with the configured model."""
    from edgeasd.agent.enrollment.kept_audio import AudioStore
    from edgeasd.agent.enrollment.rebuild import rebuild
    from edgeasd.agent.runloop.stages import make_embedder, quality_options

    config = config_of(args)
    paths = paths_of(config)
    _refuse_if_running(paths, "rebuild")
    embedder = make_embedder(config)
    report = rebuild(
        config,
        paths.bank,
        AudioStore(paths.audio_dir, config.enrollment.audio_max_bytes),
        embedder,
        quality_options(config),
        drop_unkept=args.drop_unkept,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    for line in report.lines():
        print(f"warning: {line}", file=sys.stderr)
    before = "" if report.previous is None else f", {report.previous} before"
    print(
        f"rebuilt the bank with {embedder.info.id}: {report.references} references in "
        f"{len(report.reembedded) + len(report.carried)} groups{before} "
        f"({len(report.reembedded)} re-embedded, {len(report.carried)} kept without audio, "
        f"{len(report.dropped)} dropped; previous bank kept as bank.before-rebuild and "
        "backup generation 1)"
    )
    return 0


def _generation(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a generation is 1, 2 or 3, not {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``edgeasd bank ...``."""
    from edgeasd.cli.bank_edit import cmd_remove, cmd_restore

    p = subparsers.add_parser(
        "bank",
        help="inspect and edit the reference bank",
        description="Inspect and edit the bank of normal references the agent scores against. "
        "remove and restore go through the running daemon when there is one; rebuild needs "
        "the daemon stopped (systemctl stop edgeasd).",
    )
    sub = p.add_subparsers(dest="bank_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("list", help="one line per reference")
    add_config_arg(c)
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_list)
    c = sub.add_parser("summary", help="references per domain tag, threshold, model")
    add_config_arg(c)
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_summary)
    c = sub.add_parser("remove", help="remove references by id (through the running daemon)")
    add_config_arg(c)
    c.add_argument(
        "ids", nargs="+", type=int, metavar="ID", help="reference ids, as `edgeasd bank list` shows"
    )
    c.set_defaults(func=cmd_remove)
    c = sub.add_parser("rebuild", help="re-embed the kept audio with the configured model")
    add_config_arg(c)
    c.add_argument(
        "--drop-unkept",
        action="store_true",
        help="drop the references whose audio is not kept (default: keep their stored "
        "embeddings, or refuse when the model changed)",
    )
    c.set_defaults(func=cmd_rebuild)
    c = sub.add_parser("restore", help="list the automatic backups, or restore one")
    add_config_arg(c)
    c.add_argument(
        "generation",
        nargs="?",
        type=_generation,
        metavar="GENERATION",
        help="the backup to put back: 1 (newest), 2 or 3 (default: list them)",
    )
    c.set_defaults(func=cmd_restore)
