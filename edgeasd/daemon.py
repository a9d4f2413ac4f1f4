"""The agent's run loop: source → windower → quality → embedder → bank → detector → sinks.

One thread (the caller of :meth:`Daemon.run`, the main thread under ``edgeasd run``) owns
the reference bank: it scores windows, and it alone enrolls. Control-socket threads hand it
:class:`Command` objects through a queue and wait for the reply, so an enrollment is never
seen half done and is saved (``bank.save``) before the reply reports success.

Service integration (``Type=notify``): ``READY=1`` once the model, the bank and the stream
are up and the numba kernels are compiled; ``WATCHDOG=1`` only after a window was processed
while frames keep arriving (a dead audio callback stops it, and systemd restarts us);
``STATUS=`` with the last score. SIGTERM drops the partial window, flushes the logs and leaves
the bank intact; SIGHUP reloads the configuration. A lost device is retried
``device.retries`` times, then the daemon exits with a :class:`~edgeasd.errors.DeviceError`.
An unexpected error (a bug) during an enrollment is logged with its traceback and answered
as an error to the waiting client; the bank is reloaded from disk and the daemon goes on.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd import enrollment
from edgeasd.audio import quality as audio_quality
from edgeasd.audio.windower import Window, Windower
from edgeasd.config import Config, load_config
from edgeasd.control import Command, ControlServer, drain
from edgeasd.detect import Detector, make_event
from edgeasd.errors import ControlError, EdgeasdError, InputError
from edgeasd.grouping import GroupBuilder
from edgeasd.kept_audio import AudioStore
from edgeasd.notify import Notifier
from edgeasd.paths import resolve_paths
from edgeasd.pipeline import ResilientSource, make_embedder, quality_options, warm_kernels
from edgeasd.scoring import store
from edgeasd.sinks import EventSinks
from edgeasd.status import StatusBoard

log = logging.getLogger(__name__)

#: What ``status`` says about alerts while an ``enroll --next`` request collects windows.
ENROLLING_ALERTS = (
    "suppressed: enroll --next is collecting windows the operator declared normal "
    "(they are still scored and logged)"
)


class Daemon:
    """The streaming agent.

    Parameters
    ----------
    config : Config
        The validated configuration (``config.origin`` is re-read on SIGHUP / ``reload``).
    initial_enroll : list of (n, domain)
        Enrollments queued before start, each exactly as an ``enroll --next n`` request
        (groups of ``enrollment.group_seconds``): ``edgeasd demo`` and ``enroll --next``
        without a daemon.
    on_record : callable, optional
        Called with every per-window record and every event (dicts) after they are logged.
    handle_signals : bool
        Install SIGTERM/SIGINT/SIGHUP handlers (only possible on the main thread).
    until_enrolled : bool
        Stop once every pending enrollment is done (``enroll --next`` without a daemon).
    """

    def __init__(
        self,
        config: Config,
        *,
        initial_enroll: Sequence[tuple[int, str]] = (),
        on_record: Callable[[dict[str, Any]], None] | None = None,
        handle_signals: bool = True,
        until_enrolled: bool = False,
    ) -> None:
        self.config = config
        self.dirs = resolve_paths(config)
        self.on_record = on_record
        self.handle_signals = handle_signals
        self.until_enrolled = until_enrolled
        self._commands: queue.Queue[Command] = queue.Queue()
        self._active: list[Command] = []  # enroll_next requests collecting windows, in order
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._signal = "ok"  # last signal quality status, to report changes
        self.notifier = Notifier()
        self.initial = [Command("enroll_next", {"n": n, "domain": d}) for n, d in initial_enroll]
        for cmd in self.initial:
            self._commands.put(cmd)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg = self.config
        self.dirs.ensure()
        self.embedder = make_embedder(cfg)
        self.info = self.embedder.info
        self.window_seconds = cfg.window.seconds or self.info.window_seconds
        self.hop_seconds = cfg.window.hop_seconds or self.window_seconds
        self.bank_path = self.dirs.bank
        # staged audio of enrollments killed before their commit (never acknowledged)
        AudioStore(self.dirs.audio_dir, cfg.enrollment.audio_max_bytes).clean_staged()
        self.bank = enrollment.open_bank(self.bank_path, cfg.scoring, self.info)
        self._bank_fp = _fingerprint(self.bank_path)
        warm_kernels(self.bank, self.info.dim, self.info.metric)
        # the socket first: it refuses to start next to a live daemon, whose status.json
        # must then stay untouched
        self.server = ControlServer(self.dirs.control_socket, self._handle).start()
        self.status = StatusBoard(self.dirs.status_file, self.info)
        self._apply_config(cfg)

    def _apply_config(self, cfg: Config) -> None:
        """(Re)build what a reload can change without a restart."""
        self.config = cfg
        if getattr(self, "sinks", None) is not None:
            self.sinks.close()
        self._quality = quality_options(cfg)  # before sinks: _handle waits for those
        self.sinks = EventSinks.from_config(cfg, self.dirs, log)
        self._refresh_detector()

    def _bank_changed(self) -> None:
        """Cache what the per-window path reads from the bank (after a load or enrollment).

        ``bank.domains`` and ``bank.groups`` build arrays of all N references: read them
        here once, not per window.
        """
        self._domain_of = enrollment.domain_by_id(self.bank)
        self._n_groups = len(set(self.bank.groups.tolist()))

    def _refresh_detector(self) -> None:
        """Rebuild the detector after an enrollment or reload (None: no finite threshold)."""
        self._bank_changed()
        threshold, source = enrollment.threshold_for(self.bank, self.config)
        det = self.config.detector
        self.detector = (
            Detector(threshold, k=det.k, n=det.n, threshold_source=source)
            if np.isfinite(threshold)
            else None
        )
        self.status.update(
            threshold=threshold if np.isfinite(threshold) else None,
            threshold_source=source,
            bank=enrollment.bank_summary(self.bank),
            bank_size=len(self.bank),
            learning_needed=self._learning_needed(),
            learning=self._learning(),
        )

    def _learning_needed(self) -> int:
        return max(0, self.config.scoring.min_references - len(self.bank))

    def _learning(self) -> str | None:
        """Why the agent cannot score yet (None: it can)."""
        if self._learning_needed():
            return (
                f"{self._learning_needed()} more normal windows needed "
                "(edgeasd enroll --next N, or enroll FILE...)"
            )
        if self.bank.exclude_same_group and self._n_groups < 2:
            # each reference's density comes from other groups: with one (a first enrollment
            # shorter than enrollment.group_seconds), scores are raw distances and the
            # threshold cannot be calibrated. Any further enrollment is a new group; ask for
            # a full group's worth so that the new group is more than a single window.
            seconds = self.config.enrollment.group_seconds
            n = max(1, math.ceil(seconds / self.hop_seconds))
            return (
                f"enroll at least {seconds:g} more seconds of normal operation "
                f"(edgeasd enroll --next {n}, or enroll FILE...)"
            )
        return None

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        """Run until the source ends or SIGTERM; returns the exit code (0).

        Raises
        ------
        DeviceError
            The capture device was lost and did not come back after ``device.retries``.
        EdgeasdError
            Model, bank, config or socket problems found at start.
        """
        if self.handle_signals:
            self._install_signals()
        try:
            self._setup()
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def stop(self) -> None:
        """Ask the run loop to stop after the current block (safe from any thread)."""
        self._stop.set()

    def _loop(self) -> None:
        ready = False
        windower = Windower(self.info.sample_rate, self.window_seconds, self.hop_seconds)
        stall = self.window_seconds + self.hop_seconds + self.config.device.stall_seconds
        last_progress, last_ping = time.monotonic(), 0.0
        self.source = ResilientSource(lambda: self.config, self.info.sample_rate, self._stop)
        for block in self.source.blocks():
            self.status.update(write=False, source=self.source.stats)
            if not ready:
                self.status.update(state="learning" if self._learning() else "running")
                self.notifier.ready(self.status.line())
                ready = True
            if self._stop.is_set():
                break
            self._drain_commands()
            if self._reload.is_set():
                self._do_reload()
                if self.source.reopening:
                    windower = Windower(
                        self.info.sample_rate, self.window_seconds, self.hop_seconds
                    )
                    continue
            for window in windower.push(block):
                self._process(window)
                last_progress = time.monotonic()
            now = time.monotonic()
            if now - last_progress < stall and now - last_ping >= 1.0:
                self.notifier.watchdog()  # frames arrive and windows get processed
                last_ping = now
            if self.until_enrolled and not self._active and self._commands.empty():
                break
        # a partial window is dropped here: it is never scored nor enrolled

    def _process(self, window: Any) -> None:
        t0 = time.perf_counter()
        q = audio_quality.assess(window.samples, **self._quality)
        record = make_event(
            "window",
            window.start_time,
            index=int(window.index),
            level_dbfs=_round(q.rms_dbfs),
            quality=q.status,
        )
        if q.status != self._signal:  # report changes only, not every bad window
            self._emit_event(
                make_event(
                    "signal",
                    window.start_time,
                    previous=self._signal,
                    window_index=int(window.index),
                    **q.as_dict(),
                )
            )
            self._signal = q.status
        if q.status != "ok":
            record["decision"] = "signal"
        elif self._still_active():
            self._enrolling(window, record)
        elif self._learning():
            record.update(decision="learning", needed=self._learning_needed())
        else:
            self._score(window, record)
        record["processing_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        self.sinks.emit(record)
        self.status.window(record)
        if self.notifier.enabled:  # line() snapshots the status: skip it outside systemd
            self.notifier.status(self.status.line())
        if self.on_record:
            self.on_record(record)

    def _score(
        self,
        window: Any,
        record: dict[str, Any],
        embedding: np.ndarray | None = None,
        alerts: bool = True,
    ) -> None:
        """Score one window into ``record``; ``alerts`` False: the detector is not fed."""
        if embedding is None:
            embedding = self.embedder.embed(window.samples[None, :])
        scores, nearest = self.bank.score(embedding, return_nearest=True)
        score, ref = float(scores[0]), int(nearest[0])
        record.update(
            score=round(score, 6),
            nearest_id=ref,
            nearest_domain=self._domain_of[ref],
        )
        if self.detector is None:  # no finite threshold yet
            record.update(decision="uncalibrated", threshold=None)
            return
        record.update(
            threshold=self.detector.threshold,
            decision="anomalous" if score > self.detector.threshold else "normal",
        )
        if not alerts:
            return
        for event in self.detector.update(score, window.start_time, int(window.index)):
            self._emit_event(event.to_dict())

    def _emit_event(self, event: dict[str, Any]) -> None:
        self.sinks.emit(event)
        self.status.event(event)
        if self.on_record:
            self.on_record(event)

    # ------------------------------------------------------------------ enrollment

    def _still_active(self) -> bool:
        """Whether an ``enroll --next`` request collects windows (abandoned ones dropped)."""
        for cmd in [c for c in self._active if c.abandoned]:
            builder = self._builder(cmd)
            log.info("enroll --next abandoned by its client: %d windows dropped", builder.collected)
            builder.discard()
            self._active.remove(cmd)
            self.status.update(enrolling=None)
        return bool(self._active)

    def _enrolling(self, window: Window, record: dict[str, Any]) -> None:
        """A window of an ``enroll --next`` request: scored and logged, then collected.

        Its score is logged like any other (once the bank can score), but it feeds no alert:
        the operator declared this audio normal. The embedding computed for the score is
        the one enrolled; only it (``dim`` floats) stays in memory, the samples go to the
        group's staged audio file.
        """
        cmd = self._active[0]
        record["decision"] = "enrolling"
        try:
            embedding = self.embedder.embed(window.samples[None, :])
        except EdgeasdError as exc:
            self._active.pop(0)
            self._builder(cmd).discard()
            self.status.update(enrolling=None)
            cmd.finish(error=exc)
            return
        except Exception as exc:
            self._active.pop(0)
            self._builder(cmd).discard()
            self.status.update(enrolling=None)
            self._enrollment_failed(cmd, exc, [])
            return
        if not self._learning():
            self._score(window, record, embedding, alerts=False)
            record.update(verdict=record["decision"], decision="enrolling", alerts_suppressed=True)
        self._collect(cmd, window, embedding)

    def _builder(self, cmd: Command) -> GroupBuilder:
        """The group builder of an ``enroll --next`` request (created on its first window)."""
        builder = cmd.payload.get("_builder")
        if builder is None:
            cfg = self.config.enrollment
            builder = GroupBuilder(
                "live",
                cmd.payload["domain"],
                "live",
                self.info.sample_rate,
                self.window_seconds,
                cfg.group_seconds,
                self.dirs.audio_dir if cfg.keep_audio else None,
            )
            cmd.payload["_builder"] = builder
        return builder

    def _collect(self, cmd: Command, window: Window, embedding: np.ndarray) -> None:
        builder = self._builder(cmd)
        builder.embedded(builder.add(window.start_time, window.samples), embedding)
        self.status.update(
            enrolling={
                "collected": builder.collected,
                "n": cmd.payload["n"],
                "domain": cmd.payload["domain"],
                "alerts": ENROLLING_ALERTS,
            }
        )
        if builder.collected < cmd.payload["n"]:
            return
        self._active.pop(0)
        batches: list[enrollment.Batch] = []
        try:
            batches = builder.finish()
            cmd.finish(self._commit(batches))
        except EdgeasdError as exc:
            enrollment.discard_staged(batches)
            cmd.finish(error=exc)
        except Exception as exc:
            enrollment.discard_staged(batches)
            self._enrollment_failed(cmd, exc, batches)
        finally:
            self.status.update(enrolling=None)

    def _accept_next(self, cmd: Command) -> None:
        """Queue an ``enroll --next`` request, or refuse it by name.

        Refused: a bad domain tag, more windows than ``enrollment.max_next_seconds`` allows,
        and a request from the socket while another one collects (one at a time: a second
        operator gets an immediate answer instead of waiting up to an hour). Requests given
        at start (``edgeasd demo``, ``enroll --next`` without a daemon) queue.
        """
        try:
            enrollment.validate_tag("domain", cmd.payload.get("domain"))
            n, hop = cmd.payload.get("n"), self.hop_seconds
            most = max(1, int(self.config.enrollment.max_next_seconds // hop))
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= most:
                raise InputError(
                    f"enroll --next {n}: at most {most} windows may be collected per request "
                    f"(enrollment.max_next_seconds {self.config.enrollment.max_next_seconds:g} s "
                    f"at a hop of {hop:g} s)",
                    help=f"enroll in requests of at most {most} windows, or raise "
                    "enrollment.max_next_seconds",
                )
            if self._active and not any(cmd is c for c in self.initial):
                busy = self._active[0]
                got = self._builder(busy).collected
                raise ControlError(
                    f"another `enroll --next` is collecting windows ({got} of "
                    f"{busy.payload['n']}, domain {busy.payload['domain']}); one runs at a time",
                    help="retry once it is done (`edgeasd status` shows its progress)",
                )
        except EdgeasdError as exc:
            cmd.finish(error=exc)
            return
        self._active.append(cmd)

    def _commit(self, batches: list[enrollment.Batch]) -> dict[str, Any]:
        """Enroll and save all batches (all or nothing), refresh the threshold.

        Persisted means success: audio that could not be kept is a warning in the result.
        """
        cfg = self.config.enrollment
        audio = AudioStore(self.dirs.audio_dir, cfg.audio_max_bytes) if cfg.keep_audio else None
        try:
            with store.locked(self.bank_path):
                if _fingerprint(self.bank_path) != self._bank_fp:  # written by someone else
                    log.warning("the bank on disk changed since it was loaded: reloading it")
                    self.bank = enrollment.open_bank(self.bank_path, self.config.scoring, self.info)
                ids = enrollment.commit(self.bank, self.bank_path, batches, audio)
                self._bank_fp = _fingerprint(self.bank_path)
        except BaseException:
            enrollment.discard_staged(batches)  # audio staged for a commit that failed
            self.bank = enrollment.open_bank(self.bank_path, self.config.scoring, self.info)
            self._bank_fp = _fingerprint(self.bank_path)
            self._bank_changed()
            raise
        self._refresh_detector()
        result = enrollment.enrollment_result(self.bank, batches, ids)
        result["warnings"] = [] if audio is None else list(audio.warnings)
        self._emit_event(make_event("enrolled", time.time(), **result))
        if not self._learning():
            self.status.update(state="running")
        return result

    def _enrollment_failed(
        self, cmd: Command, exc: Exception, batches: Sequence[enrollment.Batch]
    ) -> None:
        """Answer an enrollment that hit an unexpected (non-:class:`EdgeasdError`) error.

        The traceback goes to the log (the journal under systemd), the bank is reloaded
        from disk, so that nothing half-enrolled stays in memory, and the client gets an
        error naming the failure. When the bank cannot be reloaded, the client still gets
        its answer, then the reload's error propagates and stops the daemon.

        Parameters
        ----------
        cmd : Command
            The ``enroll_next`` or ``commit`` command that failed.
        exc : Exception
            What it raised.
        batches : sequence of edgeasd.enrollment.Batch
            Its groups, when they were embedded before the failure (to tell the client
            whether they reached the bank on disk).
        """
        log.error(
            "%s request failed with an unexpected error; reloading the bank from disk",
            cmd.kind,
            exc_info=exc,
        )
        what = f"the enrollment failed with an internal error ({type(exc).__name__}: {exc})"
        advice = "the traceback is in the daemon's log (`journalctl -u edgeasd`); please report it"
        try:
            self.bank = enrollment.open_bank(self.bank_path, self.config.scoring, self.info)
            self._bank_fp = _fingerprint(self.bank_path)
            self._refresh_detector()
        except BaseException:
            cmd.finish(
                error=ControlError(
                    f"{what}, and the bank could not be reloaded: the daemon stops", help=advice
                )
            )
            raise
        saved = {b.group for b in batches} & set(self.bank.groups.tolist())
        outcome = "its references are in the bank" if saved else "nothing was enrolled"
        cmd.finish(error=ControlError(f"{what}; {outcome}", help=advice))

    def _drain_commands(self) -> None:
        pending = drain(self._commands)
        while pending:
            cmd = pending.pop(0)
            if cmd.abandoned:
                if cmd.kind == "commit":
                    enrollment.discard_staged(cmd.payload["batches"])
                continue
            if cmd.kind == "enroll_next":
                self._accept_next(cmd)
            elif cmd.kind == "commit":
                try:
                    cmd.finish(self._commit(cmd.payload["batches"]))
                except EdgeasdError as exc:
                    cmd.finish(error=exc)
                except Exception as exc:
                    try:
                        self._enrollment_failed(cmd, exc, cmd.payload["batches"])
                    except BaseException:
                        for rest in pending:  # answered by _shutdown
                            self._commands.put(rest)
                        raise
            elif cmd.kind == "reload":
                self._reload.set()
                cmd.finish({"reloading": True})

    def _handle(self, request: dict[str, Any], gone: Callable[[], bool]) -> dict[str, Any]:
        """Control-socket handler (runs in a connection thread)."""
        op = request["op"]
        if not hasattr(self, "sinks"):
            raise ControlError("the daemon is still starting", help="retry in a few seconds")
        if op == "status":
            return self.status.snapshot()
        if self._stop.is_set():
            raise ControlError("the daemon is shutting down", help="retry once it is back")
        if op == "enroll_files":
            cfg = self.config.enrollment
            batches = enrollment.file_batches(
                request["paths"],
                self.embedder,
                request["domain"],
                self.hop_seconds,
                self._quality,
                cfg.group_seconds,
                stage_dir=self.dirs.audio_dir if cfg.keep_audio else None,
                max_seconds=cfg.max_request_seconds,
            )
            cmd = Command("commit", {"batches": batches})
        else:
            cmd = Command(op, {k: v for k, v in request.items() if k != "op"})
        self._commands.put(cmd)
        while not cmd.done.wait(0.25):
            if gone():  # Ctrl-C on `edgeasd enroll --next`: do not enroll behind its back
                cmd.abandoned = True
                raise ControlError("the client hung up; request abandoned")
        return cmd.wait()

    # ------------------------------------------------------------------ reload, shutdown

    def _do_reload(self) -> None:
        self._reload.clear()
        self.notifier.reloading()
        old = self.config
        try:
            new = load_config(old.origin) if old.origin else old
        except EdgeasdError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc.format())
            self.notifier.ready(self.status.line())
            return
        for section in ("model", "window", "scoring", "paths"):
            if getattr(new, section) != getattr(old, section):
                log.warning("reload: changes to '%s' take effect after a restart", section)
        self._apply_config(new)
        if new.source != old.source:
            self.source.reopen()
        log.info("configuration reloaded from %s", old.origin)
        self.notifier.ready(self.status.line())

    def _shutdown(self) -> None:
        self.notifier.stopping()
        for cmd in self._active + drain(self._commands):
            if cmd.kind == "enroll_next":
                self._builder(cmd).discard()
            elif cmd.kind == "commit":
                enrollment.discard_staged(cmd.payload["batches"])
            cmd.finish(
                error=ControlError(
                    "the daemon stopped before the enrollment completed; nothing was enrolled",
                    help="start the daemon again and repeat the request",
                )
            )
        if hasattr(self, "server"):
            self.server.close()
        if hasattr(self, "status"):
            self.status.update(state="stopped")
        if getattr(self, "sinks", None) is not None:
            self.sinks.close()


def _fingerprint(path: Path) -> bytes | None:
    """The bank file's checksum (None: no file), to notice writes by other processes."""
    return store.fingerprint(path) if path.exists() else None


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 2)
