"""The daemon's command side: control-socket requests and the enrollments they start.

:class:`CommandHandling` is mixed into :class:`~edgeasd.agent.runloop.daemon.Daemon` and works on
its state (bank, status, sinks, embedder): a control-socket thread hands each request to
:meth:`~CommandHandling._handle`, which queues a :class:`~edgeasd.agent.control.handoff.Command`
and waits; the run loop's thread takes the commands (:meth:`~CommandHandling._drain_commands`)
and alone changes the bank. Here live the ``enroll --next`` requests collecting live windows
(refused or queued, grouped as they arrive, committed all or nothing), the file enrollments
embedded in the connection thread and committed by the run loop, and the recovery from an
unexpected error during an enrollment (the bank reloaded from disk, the client answered).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeasd.agent.alerts.bank_events import bank_event
from edgeasd.agent.control.bank_commands import BankCommands, bank_fingerprint
from edgeasd.agent.control.handoff import Command, drain
from edgeasd.agent.enrollment import bank_lifecycle, enroll, feedback, file_enrollment, guard
from edgeasd.agent.enrollment.batch import Batch, validate_tag
from edgeasd.agent.enrollment.grouping import GroupBuilder
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.audio import quality as audio_quality
from edgeasd.audio.windower import Window
from edgeasd.errors import ControlError, EdgeasdError, InputError
from edgeasd.scoring import store

log = logging.getLogger("edgeasd.agent.runloop.daemon")  # one logger for the daemon's messages

#: What ``status`` says about alerts while an ``enroll --next`` request collects windows.
ENROLLING_ALERTS = (
    "suppressed: enroll --next is collecting windows the operator declared normal "
    "(they are still scored and logged)"
)


class CommandHandling(BankCommands):
    """Control requests and enrollment coordination of the :class:`Daemon` (a mixin).

    It uses the daemon's attributes: ``config``, ``dirs``, ``info``, ``embedder``, ``bank``,
    ``bank_path``, ``status``, ``hop_seconds``, ``window_seconds``, ``until_enrolled``, the
    command queue
    ``_commands`` and the collecting ``enroll --next`` requests ``_active``, and its methods
    ``_score``, ``_emit_event``, ``_refresh_detector``, ``_bank_changed`` and ``_learning``.
    """

    def _still_active(self) -> bool:
        """Whether an ``enroll --next`` request collects windows (abandoned ones dropped)."""
        for cmd in [c for c in self._active if c.abandoned]:
            builder = self._builder(cmd)
            log.info("enroll --next abandoned by its client: %d windows dropped", builder.collected)
            builder.discard()
            self._active.remove(cmd)
            self.status.update(enrolling=None)
        return bool(self._active)

    def _enrolling(self, window: Window, record: dict[str, Any], q: audio_quality.Quality) -> None:
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
        if not self._state.learning:
            self._score(embedding, window, record, q, alerts=False)
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

    def _progress(self, cmd: Command) -> None:
        """Show an ``enroll --next`` request's progress in the status (from its acceptance).

        ``collected`` of ``n`` windows, and the windows ``skipped`` by their quality status
        (clipped or without signal: never enrolled), so that ``edgeasd status`` and the
        waiting client show progress from the first second.
        """
        builder = cmd.payload.get("_builder")
        self.status.update(
            enrolling={
                "collected": builder.collected if builder is not None else 0,
                "n": cmd.payload["n"],
                "domain": cmd.payload["domain"],
                "alerts": ENROLLING_ALERTS,
                "skipped": dict(cmd.payload.get("_skipped") or {}),
                "requested": cmd.payload.setdefault("_requested", time.time()),
            }
        )

    def _skipped(self, status: str) -> None:
        """Count a window the collecting request could not enroll (its quality ``status``)."""
        cmd = self._active[0]
        skipped = cmd.payload.setdefault("_skipped", {})
        skipped[status] = skipped.get(status, 0) + 1
        self._progress(cmd)

    def _collect(self, cmd: Command, window: Window, embedding: np.ndarray) -> None:
        builder = self._builder(cmd)
        builder.embedded(builder.add(window.start_time, window.samples), embedding)
        self._progress(cmd)
        if builder.collected < cmd.payload["n"]:
            return
        self._active.pop(0)
        batches: list[Batch] = []
        try:
            batches = builder.finish()
            accept = bool(cmd.payload.get("accept_anomalous"))
            cmd.finish(self._commit(batches, accept_anomalous=accept))
        except EdgeasdError as exc:
            enroll.discard_staged(batches)
            cmd.finish(error=exc)
        except Exception as exc:
            enroll.discard_staged(batches)
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
            validate_tag("domain", cmd.payload.get("domain"))
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
        if self._active[0] is cmd:
            self._progress(cmd)

    def _commit(
        self,
        batches: list[Batch],
        *,
        accept_anomalous: bool = False,
        kind: str = "enrolled",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Enroll and save all batches (all or nothing), refresh the threshold.

        The enrollment guard (:func:`edgeasd.agent.enrollment.guard.check`) runs first:
        windows of an existing condition above the threshold refuse the whole request
        unless ``accept_anomalous``. Persisted means success: audio that could not be kept
        is a warning in the result. The change is a ``kind`` event (``enrolled`` or
        ``feedback``, with ``extra`` fields).
        """
        st = self._state
        try:
            report = guard.check(
                self.bank, st.threshold if st.calibrated else None, batches, accept_anomalous
            )
        except BaseException:
            enroll.discard_staged(batches)  # refused: its staged audio is not kept
            raise
        cfg = self.config.enrollment
        audio = AudioStore(self.dirs.audio_dir, cfg.audio_max_bytes) if cfg.keep_audio else None
        try:
            with store.locked(self.bank_path):
                if bank_fingerprint(self.bank_path) != self._bank_fp:  # written by someone else
                    log.warning("the bank on disk changed since it was loaded: reloading it")
                    self.bank = bank_lifecycle.open_bank(
                        self.bank_path, self.config.scoring, self.info
                    )
                ids = enroll.commit(
                    self.bank, self.bank_path, batches, audio, self.config.scoring.max_references
                )
                self._bank_fp = bank_fingerprint(self.bank_path)
        except BaseException:
            enroll.discard_staged(batches)  # audio staged for a commit that failed
            self._reopen_bank()
            self._bank_changed()
            raise
        self._refresh_detector()
        result = enroll.enrollment_result(self.bank, batches, ids, self._state)
        if audio is not None:
            result["warnings"] = list(result.get("warnings") or []) + list(audio.warnings)
        result.update(extra or {})
        result["guard"] = report
        via = "direct" if self.until_enrolled else "daemon"  # `enroll --next`, no daemon running
        self._emit_event(bank_event(kind, result, via, now=self.stamps.now()))
        if not self._learning():
            self.status.update(state="running")
        return result

    def _enrollment_failed(self, cmd: Command, exc: Exception, batches: Sequence[Batch]) -> None:
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
        batches : sequence of edgeasd.agent.enrollment.batch.Batch
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
            self._reopen_bank()
            self._refresh_detector()
        except BaseException:
            cmd.finish(
                error=ControlError(
                    f"{what}, and the bank could not be reloaded: the daemon stops", help=advice
                )
            )
            raise
        saved = {b.group for b in batches} & set(self.bank.groups_.tolist())
        outcome = "its references are in the bank" if saved else "nothing was enrolled"
        cmd.finish(error=ControlError(f"{what}; {outcome}", help=advice))

    def _drain_commands(self) -> None:
        pending = drain(self._commands)
        while pending:
            cmd = pending.pop(0)
            if cmd.abandoned:
                if cmd.kind == "commit":
                    enroll.discard_staged(cmd.payload["batches"])
                continue
            if cmd.kind == "enroll_next":
                self._accept_next(cmd)
            elif cmd.kind in ("bank_remove", "bank_restore"):
                self._bank_edit(cmd)
            elif cmd.kind == "commit" and cmd.payload.get("exclusive") and self._active:
                enroll.discard_staged(cmd.payload["batches"])
                busy = self._active[0]
                cmd.finish(
                    error=ControlError(
                        f"an `enroll --next` is collecting windows ({self._builder(busy).collected}"
                        f" of {busy.payload['n']}, domain {busy.payload['domain']}): feedback "
                        "waits for no enrollment; nothing was enrolled",
                        help="retry once it is done (`edgeasd status` shows its progress)",
                    )
                )
            elif cmd.kind == "commit":
                p = cmd.payload
                try:
                    if p.get("event") == "feedback":  # in the thread that owns the bank
                        feedback.refuse_repeat(self.bank, p["extra"]["alert_id"])
                    cmd.finish(
                        self._commit(
                            p["batches"],
                            accept_anomalous=bool(p.get("accept_anomalous")),
                            kind=p.get("event", "enrolled"),
                            extra=p.get("extra"),
                        )
                    )
                except EdgeasdError as exc:
                    cmd.finish(error=exc)
                except Exception as exc:
                    try:
                        self._enrollment_failed(cmd, exc, cmd.payload["batches"])
                    except BaseException:
                        for rest in pending:  # answered by _shutdown
                            self._commands.put(rest)
                        raise
            elif cmd.kind == "reload":  # parsed and checked by the connection's thread
                self.notifier.reloading()
                try:
                    cmd.finish(self._apply_reload(cmd.payload["config"]))
                except EdgeasdError as exc:
                    log.error("reload failed, keeping the running configuration: %s", exc.format())
                    cmd.finish(error=exc)
                self.notifier.ready(self.status.line())

    def _handle(self, request: dict[str, Any], gone: Callable[[], bool]) -> dict[str, Any]:
        """Control-socket handler (runs in a connection thread)."""
        op = request["op"]
        if not hasattr(self, "sinks"):
            raise ControlError("the daemon is still starting", help="retry in a few seconds")
        if op == "status":
            return self.status.snapshot()
        if self._stop.is_set():
            raise ControlError("the daemon is shutting down", help="retry once it is back")
        if op == "feedback":
            while not self._files_lock.acquire(timeout=0.25):  # embeds like a file request
                if gone():
                    raise ControlError("the client hung up; request abandoned")
            try:
                cmd = self._feedback_command(request)
            finally:
                self._files_lock.release()
        elif op == "enroll_files":
            # one file enrollment embeds at a time (memory stays that of one request);
            # the others wait in turn, and are dropped if their client gives up meanwhile
            while not self._files_lock.acquire(timeout=0.25):
                if gone():
                    raise ControlError("the client hung up; request abandoned")
            try:
                cmd = self._file_command(request, gone)
            finally:
                self._files_lock.release()
        elif op == "reload":
            # parsed here, off the run loop; a bad file is answered, the running one kept
            try:
                new = self._read_config()
            except EdgeasdError as exc:
                log.error("reload failed, keeping the running configuration: %s", exc.format())
                raise
            cmd = Command("reload", {"config": new})
        else:
            cmd = Command(op, {k: v for k, v in request.items() if k != "op"})
        self._commands.put(cmd)
        while not cmd.done.wait(0.25):
            if gone():  # Ctrl-C on `edgeasd enroll --next`: do not enroll behind its back
                cmd.abandoned = True
                raise ControlError("the client hung up; request abandoned")
        return cmd.wait()

    def _file_command(self, request: dict[str, Any], gone: Callable[[], bool]) -> Command:
        """Embed the files of an ``enroll_files`` request into a ``commit`` command."""
        # the client opened the files with its own rights (the daemon never opens a
        # path it is given); the server owns and closes the descriptors
        files = [os.fdopen(fd, "rb", closefd=False) for fd in request["fds"]]
        cfg = self.config.enrollment
        done: list[str] = []  # one line per embedded file: the waiting client prints them

        def progress(line: str) -> None:
            done.append(line)
            self.status.update(write=False, enrolling_files=list(done))

        self.status.update(write=False, enrolling_files=[])
        try:
            batches = file_enrollment.file_batches(
                files,
                self.embedder,
                request["domain"],
                self.hop_seconds,
                self._quality,
                cfg.group_seconds,
                names=request["names"],
                stage_dir=self.dirs.audio_dir if cfg.keep_audio else None,
                max_seconds=cfg.max_request_seconds,
                progress=progress,
            )
        finally:
            for fh in files:
                fh.close()
        if gone():  # the client gave up while its files were embedded
            enroll.discard_staged(batches)
            raise ControlError("the client hung up; request abandoned")
        accept = bool(request.get("accept_anomalous"))
        return Command("commit", {"batches": batches, "accept_anomalous": accept})

    def _cancel_commands(self) -> None:
        """At shutdown: answer every pending or collecting request, enrolling nothing."""
        for cmd in self._active + drain(self._commands):
            if cmd.kind == "enroll_next":
                self._builder(cmd).discard()
            elif cmd.kind == "commit":
                enroll.discard_staged(cmd.payload["batches"])
            cmd.finish(
                error=ControlError(
                    "the daemon stopped before the enrollment completed; nothing was enrolled",
                    help="start the daemon again and repeat the request",
                )
            )
