"""Agent commands: run, demo, status, tail, enroll, score, devices, doctor, config check.

Every command takes ``--config PATH`` (default: ``$EDGEASD_CONFIG``, else
``/etc/edgeasd/edgeasd.yaml`` when it exists, else the built-in defaults) so that operator
commands find the same state, runtime and log directories as the daemon.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeasd.config import Config, load_config
from edgeasd.config.paths import SYSTEM_DIRS
from edgeasd.errors import InputError

#: Configuration read when ``--config`` is not given and ``$EDGEASD_CONFIG`` is unset; being
#: in the system's configuration directory, it selects the service's directories (config/paths.py).
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
    from edgeasd.config.paths import resolve_paths

    return resolve_paths(config)


# ---------------------------------------------------------------------------- run, demo


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


# ---------------------------------------------------------------------------- status, tail


def cmd_status(args: argparse.Namespace) -> int:
    """``edgeasd status``: the daemon's live status, else its last snapshot.

    Exit status: 0 the daemon answered, 3 it is not running (the last snapshot is shown),
    4 it runs but did not answer (busy or stalled; the last snapshot and why are shown).
    """
    from edgeasd.agent.control.client import ControlClient
    from edgeasd.agent.control.protocol import DaemonNotRunning
    from edgeasd.agent.control.status import read_status
    from edgeasd.errors import ControlError

    paths = _paths(config_of(args))
    try:
        status = ControlClient(paths.control_socket, timeout=5).request("status")
        status["stale"] = False
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
    from edgeasd.errors import StatusFileError
    from edgeasd.terminal import sanitize

    try:
        lines = _status_lines(s)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise StatusFileError(
            f"the daemon's status has a malformed field ({type(exc).__name__}: {exc})",
            help="`edgeasd status --json` shows it raw; restarting the daemon rewrites it",
        ) from None
    return "\n".join(sanitize(line) for line in lines)


def _status_lines(s: dict[str, Any]) -> list[str]:
    state = str(s.get("state", "?")) + (" (not running; last snapshot)" if s.get("stale") else "")
    lines = [f"state:      {state}"]
    if s.get("note"):
        lines.append(f"note:       {s['note']}")
    if not isinstance(s.get("model"), dict):
        return lines
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
    if s.get("decision_state"):
        lines.append(f"decisions:  {s['decision_state']}")
    lines += _format_threshold_report(s.get("threshold_report"))
    if s.get("learning"):
        lines.append(f"learning:   {s['learning']}")
    lines += [f"warning:    {w}" for w in s.get("warnings") or ()]
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
    for name, health in {**(s.get("logs") or {}), "status.json": s.get("status_file")}.items():
        if isinstance(health, dict) and (health.get("error") or health.get("dropped")):
            now = f"failing now ({health['error']})" if health.get("error") else "writing again"
            lines.append(f"log {name}: {health.get('dropped', 0)} line(s) dropped, {now}")
    return lines


def _format_threshold_report(rep: dict[str, Any] | None) -> list[str]:
    """Status lines of :func:`~edgeasd.agent.alerts.threshold_policy.threshold_report`.

    None without one.
    """
    if not rep:
        return []
    out = []
    if rep.get("predicted_false_alarm_rate") is not None:
        out.append(
            f"predicted:  {100 * rep['predicted_false_alarm_rate']:.2g} % false alarms per window, "
            f"{rep['predicted_false_alarms_per_day']:.3g} per day (rule {rep['rule']})"
        )
    if rep.get("warning"):
        out.append(f"calibrate:  {rep['warning']}")
    return out


def cmd_tail(args: argparse.Namespace) -> int:
    """``edgeasd tail``: alert events (or the score log), optionally following."""
    from edgeasd.agent.alerts.event_format import format_event
    from edgeasd.agent.alerts.event_log import read_events
    from edgeasd.terminal import sanitize

    paths = _paths(config_of(args))
    path = paths.scores_log if args.scores else paths.alerts_log
    try:
        for event in read_events(path, follow=args.follow, last=args.lines):
            # JSON escapes control characters itself; the human format is sanitized
            print(json.dumps(event) if args.json else sanitize(format_event(event)), flush=True)
    except BrokenPipeError:  # `edgeasd tail | head`
        sys.stderr.close()
    return 0


# ---------------------------------------------------------------------------- enroll, score


#: Seconds every ``enroll`` request may take beyond its expected duration (model load of
#: the daemon excluded: it already runs); generous for a loaded Raspberry Pi class device.
ENROLL_MARGIN_SECONDS = 120.0
#: Seconds allowed per MB of audio files enrolled through the daemon (reading, resampling and
#: embedding run far faster: about 0.05 s per MB with the spectral model on 2 cores).
ENROLL_SECONDS_PER_MB = 1.0


def cmd_enroll(args: argparse.Namespace) -> int:
    """``edgeasd enroll``: over the control socket, or directly when no daemon runs.

    For files, this process opens each file with its own permissions and passes the open
    descriptors to the daemon, which never opens a path it is given. Every request has a
    timeout (``--timeout``, else computed from the request's size); when it passes, the
    client hangs up and the daemon abandons the request.
    """
    from edgeasd.agent.control.client import ControlClient
    from edgeasd.agent.control.protocol import DaemonNotRunning
    from edgeasd.agent.enrollment.batch import validate_tag

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
    client = ControlClient(paths.control_socket, timeout=10)
    try:
        if args.next is not None:
            print(
                f"enrolling the next {args.next} good live windows as domain {args.domain!r}...",
                file=sys.stderr,
                flush=True,
            )
            wait = args.timeout or _next_timeout(client, config, args.next)
            result = client.request("enroll_next", timeout=wait, n=args.next, domain=args.domain)
        else:
            handles = _open_for_daemon(files)
            try:
                size_mb = sum(os.fstat(h.fileno()).st_size for h in handles) / 1e6
                wait = args.timeout or ENROLL_MARGIN_SECONDS + ENROLL_SECONDS_PER_MB * size_mb
                result = client.request(
                    "enroll_files",
                    timeout=wait,
                    fds=[h.fileno() for h in handles],
                    names=files,
                    domain=args.domain,
                )
            finally:
                for h in handles:
                    h.close()
        how = "by the running daemon"
    except DaemonNotRunning:
        result, how = _enroll_direct(config, paths, args, files), "directly (no daemon running)"
    from edgeasd.terminal import sanitize

    threshold = result.get("threshold")
    print(
        sanitize(
            f"enrolled {len(result['ids'])} references {how} in {len(result['groups'])} "
            f"group(s); bank: {result['bank_size']} references "
            f"({', '.join(f'{d}: {n}' for d, n in result['domains'].items())}), "
            f"threshold {'none' if threshold is None else f'{threshold:.4g}'} "
            f"({result.get('threshold_source', '-')})"
        )
    )
    print(f"state: {_state_line(result)}")
    for warning in result.get("warnings") or ():  # persisted anyway: still a success
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _state_line(state: dict[str, Any]) -> str:
    """``learning: ...``, ``uncalibrated: ...`` or ``ready``, from a BankState dict."""
    name = state.get("state", "?")
    if name == "learning":
        return f"learning: {state.get('learning')}"
    if name == "uncalibrated":
        return (
            f"uncalibrated (no threshold, windows get no verdict): {state.get('threshold_source')}"
        )
    return "ready: windows get a verdict (normal/anomalous)"


def _next_timeout(client: Any, config: Config, n: int) -> float:
    """Seconds to wait for ``enroll --next n``: twice the audio it needs, plus a margin.

    ``n`` beyond ``enrollment.max_next_seconds`` is refused by the daemon at once; the wait
    is computed for at most that many windows, so that it stays finite (``--next 10**18``).
    """
    window = client.request("status")["model"]["window_seconds"]
    hop = config.window.hop_seconds or config.window.seconds or window
    n = min(n, math.ceil(config.enrollment.max_next_seconds / hop) + 1)
    return ENROLL_MARGIN_SECONDS + 2.0 * (n * hop + window)


def _open_for_daemon(files: list[str]) -> list[Any]:
    """Open every file for reading with this user's permissions (errors name the file)."""
    from edgeasd.errors import AudioFileError

    handles: list[Any] = []
    try:
        for name in files:
            try:
                fh = open(name, "rb")
            except FileNotFoundError:
                raise AudioFileError(
                    f"audio file not found: {name}", help="check the path"
                ) from None
            except PermissionError:
                raise AudioFileError(
                    f"permission denied reading {name}",
                    help="enroll files you can read (check `ls -l`); the daemon reads only "
                    "what you pass it",
                ) from None
            except IsADirectoryError:
                raise AudioFileError(
                    f"{name} is a directory, not an audio file", help="pass WAV or FLAC files"
                ) from None
            except OSError as exc:
                raise AudioFileError(f"cannot open {name}: {exc.strerror}") from None
            handles.append(fh)
    except BaseException:
        for fh in handles:
            fh.close()
        raise
    return handles


def _enroll_direct(config: Config, paths: Any, args: argparse.Namespace, files: list[str]):
    from edgeasd.agent.enrollment import file_enrollment
    from edgeasd.agent.runloop.daemon import Daemon
    from edgeasd.agent.runloop.stages import check_window, make_embedder, quality_options

    paths.ensure()
    if args.next is not None:  # capture from the configured source ourselves
        daemon = Daemon(config, initial_enroll=[(args.next, args.domain)], until_enrolled=True)
        daemon.run()
        (cmd,) = daemon.initial
        return cmd.wait()  # raises if the source ended before N good windows
    embedder = make_embedder(config)
    check_window(config, embedder.info)
    hop = config.window.hop_seconds
    return file_enrollment.enroll_files_direct(
        paths,
        files,
        args.domain,
        embedder,
        config.scoring,
        config.enrollment,
        hop,
        quality_options(config),
        config=config,
    )


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
    from edgeasd.agent.service.doctor import run_checks

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
    return _check_against_model_and_bank(config, paths)


def _check_against_model_and_bank(config: Config, paths: Any) -> int:
    """``window.seconds`` against the model (an error), scoring keys against the bank (warn)."""
    from edgeasd.agent.enrollment import bank_lifecycle
    from edgeasd.agent.runloop.stages import check_window, make_embedder
    from edgeasd.scoring import load_bank

    info = make_embedder(config).info
    check_window(config, info)  # raises ConfigError: the daemon would refuse to start
    print(f"  window:   {info.window_seconds:g} s (the model's)")
    if paths.bank.exists():
        mismatch = bank_lifecycle.settings_mismatch(load_bank(paths.bank), config.scoring)
        if mismatch:
            print(f"warning: {mismatch}")
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
    p.add_argument(
        "-n", "--lines", type=_non_negative, default=20, help="how many past events (20)"
    )
    p.add_argument("--scores", action="store_true", help="the per-window score log instead")
    p.set_defaults(func=cmd_tail)

    p = subparsers.add_parser("enroll", help="enroll normal audio into the reference bank")
    add_config_arg(p)
    p.add_argument("--domain", default="source", help="domain tag, e.g. 'target' (source)")
    p.add_argument("--next", type=_positive, metavar="N", help="enroll the next N live windows")
    p.add_argument("files", nargs="*", metavar="FILE", help="recordings of normal operation")
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="give up (nothing enrolled) after this long (default: from the request's size)",
    )
    p.set_defaults(func=cmd_enroll)

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


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
