"""``edgeasd enroll``: over the control socket, or directly when no daemon runs."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from edgeasd.cli.common import (
    add_config_arg,
    config_of,
    paths_of,
    positive,
    positive_seconds,
    state_line,
)
from edgeasd.config import Config
from edgeasd.errors import InputError

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
    paths = paths_of(config)
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
            result = client.request(
                "enroll_next",
                timeout=wait,
                n=args.next,
                domain=args.domain,
                accept_anomalous=args.accept_anomalous,
            )
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
                    accept_anomalous=args.accept_anomalous,
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
    print(f"state: {state_line(result)}")
    for line in (result.get("guard") or {}).get("words") or ():
        print(sanitize(f"check: {line}"))
    for warning in result.get("warnings") or ():  # persisted anyway: still a success
        print(f"warning: {warning}", file=sys.stderr)
    return 0


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
        daemon = Daemon(
            config,
            initial_enroll=[(args.next, args.domain)],
            until_enrolled=True,
            accept_anomalous=args.accept_anomalous,
        )
        daemon.run()
        (cmd,) = daemon.initial
        return cmd.wait()  # raises if the source ended before N good windows
    embedder = make_embedder(config)
    check_window(config, embedder.info)
    hop = config.window.hop_seconds
    from edgeasd.agent.alerts.bank_events import bank_event, emit_direct

    result = file_enrollment.enroll_files_direct(
        paths,
        files,
        args.domain,
        embedder,
        config.scoring,
        config.enrollment,
        hop,
        quality_options(config),
        config=config,
        accept_anomalous=args.accept_anomalous,
    )
    emit_direct(config, paths, bank_event("enrolled", result, "direct"))
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``enroll`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser("enroll", help="enroll normal audio into the reference bank")
    add_config_arg(p)
    p.add_argument("--domain", default="source", help="domain tag, e.g. 'target' (source)")
    p.add_argument("--next", type=positive, metavar="N", help="enroll the next N live windows")
    p.add_argument("files", nargs="*", metavar="FILE", help="recordings of normal operation")
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="give up (nothing enrolled) after this long (default: from the request's size)",
    )
    p.add_argument(
        "--accept-anomalous",
        action="store_true",
        help="enroll windows of an existing condition that score above its threshold "
        "(refused by default: they may not be normal operation)",
    )
    p.set_defaults(func=cmd_enroll)
