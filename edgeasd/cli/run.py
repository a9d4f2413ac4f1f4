"""``edgeasd run`` (the daemon, as the systemd service runs it) and ``edgeasd demo``."""

from __future__ import annotations

import argparse
import logging
import tempfile
from typing import Any

from edgeasd.cli.common import add_config_arg, config_of
from edgeasd.config import Config


def cmd_run(args: argparse.Namespace) -> int:
    """``edgeasd run``: the daemon."""
    from edgeasd.agent.runloop.daemon import Daemon

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    return Daemon(config_of(args)).run()


def cmd_demo(args: argparse.Namespace) -> int:
    """``edgeasd demo``: the whole pipeline on a simulated machine, as fast as possible."""
    from edgeasd.agent.runloop.daemon import Daemon

    if not args.verbose:  # the demo prints its own lines; keep the log for errors
        logging.getLogger("edgeasd").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="edgeasd-demo-") as tmp:
        config = Config().replace(
            source={"kind": "demo", "realtime": False},
            paths={
                "state_dir": f"{tmp}/state",
                "runtime_dir": f"{tmp}/run",
                "log_dir": f"{tmp}/log",
            },
            enrollment={"keep_audio": False},
        )
        learn = config.scoring.min_references
        print(
            f"edgeasd demo: a simulated fan; its first {learn} normal windows are enrolled "
            "(learning), then every window is scored; a bearing fault "
            "starts later.\n"
        )
        # one request; its windows form groups of enrollment.group_seconds (calibration
        # leaves whole groups out, so it needs at least two)
        daemon = Daemon(config, initial_enroll=[(learn, "demo")], on_record=_print_record)
        daemon.run()
        alerts = daemon.status.snapshot()["alerts"]
    print(f"\ndemo finished: {alerts} alert(s). Next: `edgeasd doctor`, then `edgeasd run`.")
    return 0 if alerts else 1


def _print_record(record: dict[str, Any]) -> None:
    from edgeasd.agent.alerts.event_format import format_event

    kind = record["event"]
    if kind != "window":
        line = format_event(record)
        print(f"\n>>> {line}\n" if kind == "alert" else line, flush=True)
        return
    stamp = str(record["time"])[11:19]
    head = f"window {record['index']:4d}  {stamp}  level {record['level_dbfs']:6.1f} dBFS  "
    if "score" in record:
        threshold = record.get("threshold")
        cmp = "" if threshold is None else f" (threshold {threshold:.2f})"
        tail = f"score {record['score']:7.3f}{cmp}  {record['decision']}"
    else:
        tail = record["decision"]
    print(f"{head}{tail}  [{record['processing_ms']:.0f} ms]", flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``demo`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser("run", help="run the agent (the systemd service runs this)")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("demo", help="watch the whole pipeline on a simulated machine")
    p.set_defaults(func=cmd_demo)
