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
            "edgeasd demo: a simulated fan, faster than real time; every line shows the "
            f"simulated clock. Its first {learn} normal windows are enrolled (learning), then "
            "every window is scored; a bearing fault starts after 2 minutes and is repaired "
            "a minute later.\n"
        )
        # two requests, as two recordings: each is one recording group (calibration leaves
        # whole groups out, so it needs at least two)
        printer = DemoPrinter()
        first = learn // 2
        daemon = Daemon(
            config, initial_enroll=[(first, "demo"), (learn - first, "demo")], on_record=printer
        )
        daemon.run()
        alerts = daemon.status.snapshot()["alerts"]
    print(f"\ndemo finished: {alerts} alert(s). Next: `edgeasd doctor`, then `edgeasd run`.")
    return 0 if alerts else 1


#: A window that took this long (ms) was compiling: the first enrollment compiles the
#: numba scoring kernels (seconds without a cache; milliseconds once cached).
COMPILE_MS = 500.0


class DemoPrinter:
    """The demo's lines: each window, then the events it caused, all on the simulated clock.

    The daemon emits an event (an alert, an enrollment) while it processes the window that
    caused it, before that window's record: the printer holds events until the window's
    line is out, and shows each event at its window's (simulated) time, so that one clock
    runs through every line.
    """

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.enrolled = 0

    def __call__(self, record: dict[str, Any]) -> None:
        if record["event"] != "window":
            self.pending.append(record)
            return
        print(_window_line(record), flush=True)
        for event in self.pending:
            self._event(event, record)
        self.pending.clear()

    def _event(self, event: dict[str, Any], window: dict[str, Any]) -> None:
        from edgeasd.agent.alerts.event_format import format_event

        kind = event["event"]
        line = format_event({**event, "time": window["time"]})[11:]  # the window's clock
        if kind in ("alert", "recovered"):
            print(f"\n>>> {line}\n", flush=True)
            return
        print(line, flush=True)
        if kind == "enrolled":
            self.enrolled += 1
            for note in _enrolled_notes(event, window, first=self.enrolled == 1):
                print(f"    ({note})", flush=True)


def _enrolled_notes(event: dict[str, Any], window: dict[str, Any], first: bool) -> list[str]:
    """What the demo's enrollment means: the one-time compile, and the tiny bank's forecast."""
    from edgeasd import readable

    notes = []
    if first and window.get("processing_ms", 0) >= COMPILE_MS:
        notes.append(
            f"window {window['index']} took {window['processing_ms'] / 1000:.1f} s: the first "
            "enrollment compiles the scoring code once; it is cached for later runs"
        )
    per_day = event.get("predicted_false_alarms_per_day")
    provisional = event.get("provisional_conditions")
    if event.get("threshold") is None:  # one recording group: nothing to leave out yet
        notes.append(
            "one recording enrolled: no threshold yet; the second recording gives one (the "
            "threshold rests on how a recording scores against the others)"
        )
    elif per_day is None:  # the forecast needs far more than the demo's 100 s of one session
        n = event.get("bank_size", len(event.get("ids") or ()))
        notes.append(
            f"a bank of {n} windows from one session: false alerts a day are not known yet"
            + (
                f" and alerts of condition {', '.join(map(str, provisional))} are provisional"
                if provisional
                else ""
            )
            + "; beside a real machine, enroll at least 5 minutes of each condition in five "
            "or more recordings, and `edgeasd bank summary` says what is still needed"
        )
    else:
        notes.append(f"forecast: at most {readable.count(per_day)} false alert(s) a day")
    return notes


def _window_line(record: dict[str, Any]) -> str:
    stamp = str(record["time"])[11:19]
    head = f"{stamp}  window {record['index']:3d}  level {record['level_dbfs']:6.1f} dBFS  "
    if "score" in record:
        threshold = record.get("threshold")
        cmp = "" if threshold is None else f" (threshold {threshold:.2f})"
        tail = f"score {record['score']:7.3f}{cmp}  {record['decision']}"
    else:
        tail = record["decision"]
    return f"{head}{tail}  [{record['processing_ms']:.0f} ms]"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``demo`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser("run", help="run the agent (the systemd service runs this)")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("demo", help="watch the whole pipeline on a simulated machine")
    p.set_defaults(func=cmd_demo)
