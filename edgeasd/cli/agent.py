"""Agent commands: run, demo, status, tail, enroll, score, devices, doctor, config check.

Every command takes ``--config PATH`` (default: ``$EDGEASD_CONFIG``, else
``/etc/edgeasd/edgeasd.yaml`` when it exists, else the built-in defaults) so that operator
commands find the same state, runtime and log directories as the daemon.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeasd.config import Config, load_config
from edgeasd.errors import InputError
from edgeasd.paths import SYSTEM_DIRS

#: Configuration read when ``--config`` is not given and ``$EDGEASD_CONFIG`` is unset; being
#: in the system's configuration directory, it selects the service's directories (paths.py).
SYSTEM_CONFIG = SYSTEM_DIRS.config_dir / "edgeasd.yaml"


def default_config_path() -> str | None:
    """``$EDGEASD_CONFIG``, else the system configuration if present, else None."""
    env = os.environ.get("EDGEASD_CONFIG")
    if env:
        return env
    return str(SYSTEM_CONFIG) if SYSTEM_CONFIG.is_file() else None


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """Add the common ``--config`` option."""
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="PATH",
        help="configuration file (default: $EDGEASD_CONFIG, else /etc/edgeasd/edgeasd.yaml "
        "if present, else built-in defaults)",
    )


def config_of(args: argparse.Namespace) -> Config:
    """Load the configuration the command line names."""
    return load_config(args.config or default_config_path())


def _paths(config: Config) -> Any:
    from edgeasd.paths import resolve_paths

    return resolve_paths(config)


# ---------------------------------------------------------------------------- run, demo


def cmd_run(args: argparse.Namespace) -> int:
    """``edgeasd run``: the daemon."""
    from edgeasd.daemon import Daemon

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    return Daemon(config_of(args)).run()


def cmd_demo(args: argparse.Namespace) -> int:
    """``edgeasd demo``: the whole pipeline on a simulated machine, as fast as possible."""
    from edgeasd.daemon import Daemon

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
    from edgeasd.sinks import format_event

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


# ---------------------------------------------------------------------------- status, tail


def cmd_status(args: argparse.Namespace) -> int:
    """``edgeasd status``: the daemon's live status, else its last snapshot."""
    from edgeasd.control import ControlClient, DaemonNotRunning
    from edgeasd.status import read_status

    paths = _paths(config_of(args))
    try:
        status = ControlClient(paths.control_socket, timeout=5).request("status")
        status["stale"] = False
    except DaemonNotRunning:
        status = read_status(paths.status_file) or {"state": "never started", "stale": True}
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print(_format_status(status))
    return 0 if not status.get("stale") else 3


def _format_status(s: dict[str, Any]) -> str:
    state = s.get("state", "?") + (" (not running; last snapshot)" if s.get("stale") else "")
    lines = [f"state:      {state}"]
    if "model" not in s:
        return lines[0]
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
    if s.get("learning"):
        lines.append(f"learning:   {s['learning']}")
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
    return "\n".join(lines)


def cmd_tail(args: argparse.Namespace) -> int:
    """``edgeasd tail``: alert events (or the score log), optionally following."""
    from edgeasd.sinks import format_event, read_events

    paths = _paths(config_of(args))
    path = paths.scores_log if args.scores else paths.alerts_log
    try:
        for event in read_events(path, follow=args.follow, last=args.lines):
            print(json.dumps(event) if args.json else format_event(event), flush=True)
    except BrokenPipeError:  # `edgeasd tail | head`
        sys.stderr.close()
    return 0


# ---------------------------------------------------------------------------- enroll, score


def cmd_enroll(args: argparse.Namespace) -> int:
    """``edgeasd enroll``: over the control socket, or directly when no daemon runs."""
    from edgeasd.control import ControlClient, DaemonNotRunning
    from edgeasd.enrollment import validate_tag

    if (args.next is None) == (not args.files):
        raise InputError(
            "give either --next N or one or more FILEs",
            help="edgeasd enroll --domain target --next 6, or "
            "edgeasd enroll --domain target a.wav b.wav",
        )
    validate_tag("domain", args.domain)
    config = config_of(args)
    paths = _paths(config)
    files = [str(Path(f).resolve()) for f in args.files]
    client = ControlClient(paths.control_socket, timeout=None)
    try:
        if args.next is not None:
            print(
                f"enrolling the next {args.next} good live windows as domain {args.domain!r}...",
                file=sys.stderr,
                flush=True,
            )
            result = client.request("enroll_next", n=args.next, domain=args.domain)
        else:
            result = client.request("enroll_files", paths=files, domain=args.domain)
        how = "by the running daemon"
    except DaemonNotRunning:
        result, how = _enroll_direct(config, paths, args, files), "directly (no daemon running)"
    print(
        f"enrolled {len(result['ids'])} references {how} in {len(result['groups'])} "
        f"group(s); bank: {result['bank_size']} references "
        f"({', '.join(f'{d}: {n}' for d, n in result['domains'].items())}), "
        f"threshold {result['threshold']}"
    )
    for warning in result.get("warnings") or ():  # persisted anyway: still a success
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _enroll_direct(config: Config, paths: Any, args: argparse.Namespace, files: list[str]):
    from edgeasd import enrollment
    from edgeasd.daemon import Daemon
    from edgeasd.pipeline import make_embedder, quality_options

    paths.ensure()
    if args.next is not None:  # capture from the configured source ourselves
        daemon = Daemon(config, initial_enroll=[(args.next, args.domain)], until_enrolled=True)
        daemon.run()
        (cmd,) = daemon.initial
        return cmd.wait()  # raises if the source ended before N good windows
    embedder = make_embedder(config)
    hop = config.window.hop_seconds
    return enrollment.enroll_files_direct(
        paths,
        files,
        args.domain,
        embedder,
        config.scoring,
        config.enrollment,
        hop,
        quality_options(config),
    )


def cmd_score(args: argparse.Namespace) -> int:
    """``edgeasd score``: one-shot scores of recordings against the bank on disk."""
    from edgeasd import enrollment
    from edgeasd.pipeline import make_embedder, quality_options

    config = config_of(args)
    embedder = make_embedder(config)
    path = _paths(config).bank
    bank = enrollment.open_bank(path, config.scoring, embedder.info)
    enrollment.require_bank(bank, 1)
    threshold, source = enrollment.threshold_for(bank, config)
    domain_of = enrollment.domain_by_id(bank)
    rows = []
    for file in args.files:
        windows = list(
            enrollment.file_windows(
                file, embedder.info, config.window.hop_seconds, quality_options(config)
            )
        )
        scores, nearest = bank.score(
            enrollment.embed_windows(embedder, [w.samples for w in windows]), return_nearest=True
        )
        for w, s, ref in zip(windows, scores, nearest, strict=True):
            rows.append(
                {
                    "file": file,
                    "window": w.index,
                    "start_seconds": round(w.start_time, 3),
                    "score": round(float(s), 6),
                    "threshold": threshold,
                    "decision": "anomalous" if s > threshold else "normal",
                    "nearest_id": int(ref),
                    "nearest_domain": domain_of[int(ref)],
                }
            )
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return 0
    print(f"threshold {threshold:.4g} ({source})")
    print(f"{'file':<40} {'windows':>7} {'max score':>10} {'mean':>8}  decision")
    for file in args.files:
        mine = [r for r in rows if r["file"] == file]
        top = max(r["score"] for r in mine)
        mean = sum(r["score"] for r in mine) / len(mine)
        flag = "ANOMALOUS" if top > threshold else "normal"
        print(f"{_short(file, 40):<40} {len(mine):>7} {top:>10.4f} {mean:>8.4f}  {flag}")
    return 0


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


# ---------------------------------------------------------------------------- devices, doctor


def cmd_devices(args: argparse.Namespace) -> int:
    """``edgeasd devices``: capture devices PortAudio sees."""
    from edgeasd.audio.microphone import list_devices

    devices = list_devices()
    if not devices:
        print("no audio capture devices found (is a microphone plugged in? `arecord -l`)")
        return 1
    for d in devices:
        print(f"{d.index:>3}  {d.describe()}")
    print("\nconfigure source.device with (part of) a name, never the index: indices change")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``edgeasd doctor``: check config, model, bank, device, numba cache and disk."""
    from edgeasd.doctor import run_checks

    failed = 0
    for check in run_checks(args.config or default_config_path()):
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[check.level]
        print(f"[{mark}] {check.name:<12} {check.detail}")
        if check.help and check.level != "ok":
            print(f"       {'':<12} hint: {check.help}")
        failed += check.level == "fail"
    return 1 if failed else 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """``edgeasd config check``: validate the configuration and show what it resolves to."""
    config = config_of(args)
    paths = _paths(config)
    print(f"configuration ok: {config.origin or 'built-in defaults'}")
    print(
        f"  source:   {config.source.kind}"
        + (
            f" ({config.source.device or config.source.path})"
            if config.source.device or config.source.path
            else ""
        )
    )
    files = config.model.paths
    if len(files) > 1:
        print(f"  model:    ensemble of {len(files)} (distances averaged):")
        for file in files:
            print(f"            - {file}")
    else:
        print(f"  model:    {files[0] if files else 'shipped default'}")
    for name in ("state_dir", "runtime_dir", "log_dir"):
        print(f"  {name + ':':<10}{getattr(paths, name)}")
    return 0


# ---------------------------------------------------------------------------- parser


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the agent commands to the ``edgeasd`` parser."""
    p = subparsers.add_parser("run", help="run the agent (the systemd service runs this)")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("demo", help="watch the whole pipeline on a simulated machine")
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser("status", help="the daemon's state, last score, bank, model")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("tail", help="show alerts (newest last)")
    add_config_arg(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="print the raw JSON lines")
    p.add_argument("-n", "--lines", type=int, default=20, help="how many past events (20)")
    p.add_argument("--scores", action="store_true", help="the per-window score log instead")
    p.set_defaults(func=cmd_tail)

    p = subparsers.add_parser("enroll", help="enroll normal audio into the reference bank")
    add_config_arg(p)
    p.add_argument("--domain", default="source", help="domain tag, e.g. 'target' (source)")
    p.add_argument("--next", type=_positive, metavar="N", help="enroll the next N live windows")
    p.add_argument("files", nargs="*", metavar="FILE", help="recordings of normal operation")
    p.set_defaults(func=cmd_enroll)

    p = subparsers.add_parser("score", help="score recordings against the bank")
    add_config_arg(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--csv", action="store_true", help="one CSV row per window")
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("devices", help="list audio capture devices")
    p.set_defaults(func=cmd_devices)

    p = subparsers.add_parser("doctor", help="check config, model, bank, microphone, disk")
    add_config_arg(p)
    p.set_defaults(func=cmd_doctor)

    p = subparsers.add_parser("config", help="configuration tools")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("check", help="validate a configuration file")
    add_config_arg(c)
    c.set_defaults(func=cmd_config_check)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
