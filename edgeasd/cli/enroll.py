"""``edgeasd enroll``: over the control socket, or directly when no daemon runs."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
from typing import Any

from edgeasd import readable
from edgeasd.cli.common import (
    add_config_arg,
    config_of,
    hop_seconds,
    paths_of,
    positive_seconds,
    state_line,
)
from edgeasd.config import Config
from edgeasd.errors import InputError
from edgeasd.readable import windows_for

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
    files = [os.path.realpath(f) for f in args.files]  # a link loop: named by open_regular
    client = ControlClient(paths.control_socket, timeout=10)
    if args.next is not None:
        hop = hop_seconds(config)
        args.next = windows_for(args.next, hop)  # checked by argparse already
        print(
            f"enrolling the next {args.next} good live windows "
            f"({readable.duration(args.next * hop)} of audio) as condition {args.domain!r}; "
            "progress below (Ctrl-C abandons it, nothing enrolled)",
            file=sys.stderr,
            flush=True,
        )
    try:
        if args.next is not None:
            wait = args.timeout or _next_timeout(client, config, args.next)
            with Progress(lambda: client.request("status").get("enrolling")):
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
                print(
                    f"enrolling {len(files)} file(s) as condition {args.domain!r}, one line per "
                    "file as it is embedded",
                    file=sys.stderr,
                    flush=True,
                )
                with FileProgress(lambda: client.request("status").get("enrolling_files")):
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


class Progress:
    """Prints an ``enroll --next`` request's progress on stderr, one line per change.

    ``collected N of M windows (time of time); skipped K: silence 2, clipping 1`` whenever
    a window is collected or skipped. With ``poll`` (a callable returning the status's
    ``enrolling`` dict), a thread asks every :attr:`interval` seconds while the request
    waits; else :meth:`show` is called with each new value.
    """

    interval = 1.0

    def __init__(self, poll: Any) -> None:
        self.poll = poll
        self._last: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def show(self, e: dict[str, Any] | None) -> None:
        """Print ``e`` (the status's ``enrolling``) if it changed since the last line."""
        if not e:
            return
        skipped = e.get("skipped") or {}
        key = (e.get("collected"), tuple(sorted(skipped.items())))
        if key == self._last:
            return
        self._last = key
        line = f"collected {e.get('collected', 0)} of {e.get('n')} windows"
        if skipped:
            reasons = ", ".join(f"{SKIP_WORDS.get(k, k)} {n}" for k, n in sorted(skipped.items()))
            line += f"; skipped {sum(skipped.values())} (not enrolled): {reasons}"
        print(line, file=sys.stderr, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.show(self.poll())
            except Exception:
                continue

    def __enter__(self) -> Progress:
        if self.poll is not None:
            self._thread = threading.Thread(target=self._run, name="enroll-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval)


class FileProgress(Progress):
    """Prints the daemon's per-file lines of an ``enroll FILE...`` request as they come."""

    def __init__(self, poll: Any) -> None:
        super().__init__(poll)
        self.printed = 0

    def show(self, lines: list[str] | None) -> None:
        """Print the lines of ``lines`` not printed yet."""
        for line in (lines or [])[self.printed :]:
            print(line, file=sys.stderr, flush=True)
        self.printed = max(self.printed, len(lines or []))

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if exc[0] is None:  # the request is done: its last lines
            try:
                self.show(self.poll())
            except Exception:
                pass


#: Why a live window was not enrolled, by its quality status.
SKIP_WORDS = {
    "clipping": "clipped",
    "silence": "silent",
    "dead": "no signal (dead microphone)",
    "dropout": "dropouts",
    "nan": "invalid samples",
}


def next_amount(text: str) -> str:
    """``--next``: a positive number of windows or a duration (``10m``), checked by argparse."""
    try:
        windows_for(text, 1.0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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
    """Open every file for reading with this user's permissions (errors name the file).

    Regular files only, opened without blocking (:func:`edgeasd.infile.open_regular`): a
    FIFO hung ``enroll`` for ever in ``open()`` (issue 20).
    """
    from edgeasd.infile import open_regular

    handles: list[Any] = []
    try:
        for name in files:
            handles.append(os.fdopen(open_regular(name, name), "rb"))
    except BaseException:
        for fh in handles:
            fh.close()
        raise
    return handles


def _enroll_direct(config: Config, paths: Any, args: argparse.Namespace, files: list[str]):
    from edgeasd.agent.enrollment import file_enrollment
    from edgeasd.agent.runloop.daemon import Daemon
    from edgeasd.agent.runloop.stages import check_window, open_model_and_bank, quality_options

    paths.ensure()
    if args.next is not None:  # capture from the configured source ourselves
        progress = Progress(None)
        daemon = Daemon(
            config,
            initial_enroll=[(args.next, args.domain)],
            until_enrolled=True,
            on_record=lambda _: progress.show(daemon.status.snapshot().get("enrolling")),
            accept_anomalous=args.accept_anomalous,
        )
        daemon.run()
        (cmd,) = daemon.initial
        return cmd.wait()  # raises if the source ended before N good windows
    # the model that scores the bank: an older shipped one keeps its bank (see the note)
    embedder, _, note = open_model_and_bank(config, paths.bank)
    check_window(config, embedder.info)
    if note:
        print(f"note: {note}", file=sys.stderr)
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
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        accept_anomalous=args.accept_anomalous,
    )
    emit_direct(config, paths, bank_event("enrolled", result, "direct"))
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``enroll`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser("enroll", help="enroll normal audio into the reference bank")
    add_config_arg(p)
    p.add_argument("--domain", default="source", help="domain tag, e.g. 'target' (default: source)")
    p.add_argument(
        "--next",
        type=next_amount,
        metavar="N|DURATION",
        help="enroll the next N live windows, or the windows of a duration of audio (10m, 90s, 1h)",
    )
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
