"""The agent's run loop: source → windower → quality → embedder → bank → detector → sinks.

One thread (the caller of :meth:`Daemon.run`, the main thread under ``edgeasd run``) owns
the reference bank: it scores windows, and it alone enrolls. Control-socket threads hand it
:class:`Command` objects through a queue and wait for the reply, so an enrollment is never
seen half done and is saved (``bank.save``) before the reply reports success.

Service integration (``Type=notify``): ``READY=1`` once the model, the bank and the stream
are up and the numba kernels are compiled; ``WATCHDOG=1`` (at most once a second) whenever
a block of audio arrives and the loop has processed the windows it completed, whatever their
quality: audio arriving is the liveness signal, and silence, clipping or dropouts are valid
states reported as ``signal`` events, not failures. A dead audio callback or a hung loop stops
the pings, and systemd restarts us. A capture stall or a lost device is a ``signal`` event
(``stalled``) in ``alerts.jsonl``, its recovery another (``resumed``); ``STATUS=`` shows the
last score. SIGTERM drops the partial window, flushes the logs and leaves
the bank intact; SIGHUP reloads the configuration. A lost device is retried
``device.retries`` times, then the daemon exits with a :class:`~edgeasd.errors.DeviceError`.
An unexpected error (a bug) during an enrollment is logged with its traceback and answered
as an error to the waiting client; the bank is reloaded from disk and the daemon goes on.

The control requests and the enrollments they start are handled by
:class:`~edgeasd.agent.control.commands.CommandHandling`, mixed into :class:`Daemon`.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeasd import threads
from edgeasd.agent.alerts import decision
from edgeasd.agent.alerts.alert_audio import AlertAudio, alert_id, log_headroom
from edgeasd.agent.alerts.detector import Detector, make_event
from edgeasd.agent.alerts.episode_audio import EpisodeRecorder
from edgeasd.agent.alerts.episodes import EpisodeKeeper
from edgeasd.agent.alerts.no_signal import SignalWatch
from edgeasd.agent.alerts.sinks import EventSinks
from edgeasd.agent.alerts.stamps import Stamps
from edgeasd.agent.control.commands import CommandHandling, bank_fingerprint
from edgeasd.agent.control.handoff import Command
from edgeasd.agent.control.server import ControlServer
from edgeasd.agent.control.status import StatusBoard
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.agent.runloop import lines
from edgeasd.agent.runloop.notify import Notifier
from edgeasd.agent.runloop.reload import ReloadHandling
from edgeasd.agent.runloop.stages import (
    ResilientSource,
    check_window,
    open_model_and_bank,
    quality_options,
    warm_kernels,
)
from edgeasd.agent.runloop.verdicts import VerdictHandling
from edgeasd.audio import quality as audio_quality
from edgeasd.audio.windower import Window, Windower
from edgeasd.config import Config
from edgeasd.config.paths import resolve_paths
from edgeasd.errors import EdgeasdError, EmbeddingError
from edgeasd.fleet.health import fleet_health

log = logging.getLogger(__name__)
#: The start, ready, stopping and stopped lines (terminal and journal), under a short name.
lifecycle = logging.getLogger("edgeasd")


class Daemon(CommandHandling, ReloadHandling, VerdictHandling):
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
        accept_anomalous: bool = False,
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
        self._files_lock = threading.Lock()  # one enroll_files request embeds at a time
        self._signal = "ok"  # last signal quality status, to report changes
        self.stamps = Stamps()  # event times never go back (a backward clock step)
        self._stop_reason: str | None = None  # the signal that stopped it (None: source ended)
        self.notifier = Notifier()
        self.initial = [
            Command("enroll_next", {"n": n, "domain": d, "accept_anomalous": accept_anomalous})
            for n, d in initial_enroll
        ]
        for cmd in self.initial:
            self._commands.put(cmd)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg = self.config
        threads.pin()  # one BLAS and numba thread: one window at a time (edgeasd/threads.py)
        self.dirs.ensure()
        self.bank_path = self.dirs.bank
        # staged audio of enrollments killed before their commit (never acknowledged)
        AudioStore(self.dirs.audio_dir, cfg.enrollment.audio_max_bytes).clean_staged()
        # the configured model, or the older shipped one that built the bank (see the note)
        self.embedder, self.bank, self.model_note = open_model_and_bank(cfg, self.bank_path)
        self.info = self.embedder.info
        check_window(cfg, self.info)
        self.window_seconds = cfg.window.seconds or self.info.window_seconds
        self.hop_seconds = cfg.window.hop_seconds or self.window_seconds
        if self.model_note:
            log.warning("%s", self.model_note)
        self._bank_fp = bank_fingerprint(self.bank_path)
        warm_kernels(self.bank, self.info.dim, self.info.metric)
        # the socket first: it refuses to start next to a live daemon, whose status.json
        # must then stay untouched
        self.server = ControlServer(self.dirs.control_socket, self._handle).start()
        # only now (a second daemon was refused above): no request survives a restart, so
        # staged audio and interrupted writes of killed enrollments go (never acknowledged)
        AudioStore(self.dirs.audio_dir, cfg.enrollment.audio_max_bytes).clean_at_start(self.bank)
        self.status = StatusBoard(self.dirs.status_file, self.info)
        self.detector: Detector | None = None  # built at the first finite threshold, then kept
        self._warned: set[str] = set()
        self.signal_watch = SignalWatch(cfg.quality.no_signal_alert_seconds, self.window_seconds)
        self.episodes = EpisodeKeeper(self.dirs.episode_file)  # an alert ongoing at the stop
        self.episodes.restore_signal(self.signal_watch)
        # before the sinks: a new MQTT sink starts from the status's (restored) episode
        self.status.update(write=False, **self.episodes.status_fields(None, self.signal_watch))
        self._apply_config(cfg)
        lifecycle.info("%s", lines.started(self))

    def _log_headroom(self) -> int:
        """Bytes the alert and score logs may still grow by (the current configuration's caps)."""
        logs = self.config.logs
        return log_headroom(
            [self.dirs.alerts_log, self.dirs.scores_log], logs.max_bytes, logs.backups
        )

    def _apply_config(self, cfg: Config) -> None:
        """(Re)build what a reload can change without a restart."""
        self.config = cfg
        old = getattr(self, "sinks", None)
        self._quality = quality_options(cfg)  # before sinks: _handle waits for those
        if getattr(self, "alert_audio", None) is None:
            self.alert_audio = AlertAudio(
                self.dirs.alert_audio_dir,
                cfg.logs.alert_audio_max_bytes,
                self.info.sample_rate,
                reserve=self._log_headroom,  # the alert lines win over their audio
            )
            self.alert_audio.clean()  # what a killed writer left; the cap may have shrunk
            self.episode_audio = EpisodeRecorder(self.alert_audio)
            self.episodes.recorder = self.episode_audio  # a resumed episode keeps its id
        self.alert_audio.max_bytes = cfg.logs.alert_audio_max_bytes  # a reload may change it
        # built before the old ones close: they take over the MQTT sink and metrics
        # whose settings did not change (the old sinks then close the rest)
        self.sinks = EventSinks.from_config(
            cfg, self.dirs, log, status=self.status.snapshot, previous=old
        )
        if old is not None:
            old.close()
        self.signal_watch.alert_seconds = cfg.quality.no_signal_alert_seconds
        self._refresh_detector()

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
        signal.signal(signal.SIGTERM, lambda *_: self.stop("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.stop("SIGINT"))
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def stop(self, reason: str = "asked to") -> None:
        """Ask the run loop to stop after the current block (safe from any thread).

        ``reason`` (the signal's name) appears in the ``stopping`` line.
        """
        if not self._stop.is_set():
            self._stop_reason = reason
        self._stop.set()

    def _loop(self) -> None:
        ready = False
        windower = Windower(self.info.sample_rate, self.window_seconds, self.hop_seconds)
        last_ping = 0.0
        self.source = ResilientSource(
            lambda: self.config, self.info.sample_rate, self._stop, on_change=self._device_changed
        )
        for block in self.source.blocks():
            self.status.update(write=False, source=self.source.stats)
            if not ready:
                self.status.update(state="learning" if self._learning() else "running")
                self.notifier.ready(self.status.line())
                lifecycle.info("%s", lines.ready(self))
                ready = True
            if self._stop.is_set():
                break
            self._drain_commands()  # a reload over the socket is applied here
            if self._reload.is_set():
                self._do_reload()
            if self.source.reopening:  # a reload changed the source
                windower = Windower(self.info.sample_rate, self.window_seconds, self.hop_seconds)
                continue
            for window in windower.push(block):
                self._process(window)
            now = time.monotonic()
            if now - last_ping >= 1.0:
                # audio arriving is the liveness signal: every block, whatever its content
                # (silence, clipping and dropouts are valid states, reported as events)
                self.notifier.watchdog()
                last_ping = now
            if self.until_enrolled and not self._active and self._commands.empty():
                break
        # a partial window is dropped here: it is never scored nor enrolled

    def _process(self, window: Window) -> None:
        t0 = time.perf_counter()
        q = audio_quality.assess(window.samples, **self._quality)
        active = self._still_active()
        enrolling = q.ok and active  # a clipped window is never enrolled
        if active and not q.ok:
            self._skipped(q.status)
        embedding, failure, embed_ms = None, None, 0.0
        if q.scorable and not enrolling and not self._state.learning:
            try:
                te = time.perf_counter()
                embedding = self.embedder.embed(window.samples[None, :])
                embed_ms = 1000 * (time.perf_counter() - te)
            except EdgeasdError as exc:  # NaN/inf embedding or a failing model: skip it
                status = "nan" if isinstance(exc, EmbeddingError) else "embed_failed"
                q, failure = dataclasses.replace(q, status=status), exc.message
        when = self.stamps.stamp(window.start_time)  # never before the previous event
        record = make_event(
            "window",
            when,
            index=int(window.index),
            level_dbfs=_round(q.rms_dbfs),
            quality=q.status,
        )
        for event in self.signal_watch.update(
            q.scorable, when, int(window.index), q.status, clock=window.clock
        ):
            if event["event"] == "alert":
                event["id"] = alert_id(window.start_time, int(window.index), "no_signal")
            self._emit_event(event)
        if q.status != self._signal:  # report changes only, not every bad window
            details = {k: v for k, v in q.as_dict().items() if k != "status"}
            if failure:
                details["error"] = failure
            self._signal_event(when, q.status, window_index=int(window.index), **details)
        if not q.scorable:
            record.update(decision.decide(None, self._state, q).fields())
        elif enrolling:
            self._enrolling(window, record, q)
        elif self._state.learning:
            record.update(decision.decide(None, self._state, q).fields())
            record["needed"] = self._state.learning_needed
        else:
            self._score(embedding, window, record, q, embed_ms, when=when)
        record["processing_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        self.status.window(record)  # first: the sinks' status (MQTT) reads this window
        self.sinks.emit(record)  # a full log disk drops the line: scoring goes on
        self.status.update(
            write=False, logs=self.sinks.health(), fleet=fleet_health(self.sinks.observers)
        )
        if self.notifier.enabled:  # line() snapshots the status: skip it outside systemd
            self.notifier.status(self.status.line())
        if self.on_record:
            self.on_record(record)

    def _device_changed(self, problem: str | None) -> None:
        """Capture failed (a stall, a lost device) or came back: a ``signal`` event each.

        The failure is a ``stalled`` event (once per episode, however many retries), its
        recovery a ``resumed`` one at the first block after it; the next window's quality
        follows as usual.
        """
        if problem is not None and self._signal != "stalled":
            self._signal_event(self.stamps.now(), "stalled", error=problem)
        elif problem is None and self._signal == "stalled":
            self._signal_event(self.stamps.now(), "resumed")

    def _signal_event(self, when: float, status: str, **details: Any) -> None:
        """Emit a ``signal`` event for a change of the signal status (and remember it)."""
        self._emit_event(
            make_event("signal", when, previous=self._signal, status=status, **details)
        )
        self._signal = status

    def _score(
        self,
        embedding: np.ndarray,
        window: Window,
        record: dict[str, Any],
        q: audio_quality.Quality,
        embed_ms: float = 0.0,
        alerts: bool = True,
        when: float | None = None,
    ) -> None:
        """Score one window into ``record``; ``alerts`` False: the detector is not fed.

        ``when`` is the window's stamp (:class:`Stamps`), default its ``start_time``.
        """
        t1 = time.perf_counter()
        scores, nearest = self.bank.score(embedding, return_nearest=True)
        t2 = time.perf_counter()
        score, ref = float(scores[0]), int(nearest[0])
        record.update(
            score=round(score, 6),
            nearest_id=ref,
            nearest_domain=self._domain_of[ref],
            embed_ms=round(embed_ms, 3),
            score_ms=round(1000 * (t2 - t1), 3),
        )
        verdict = decision.decide(score, self._state, q)
        record.update(verdict.fields())
        if verdict.state not in ("normal", "anomalous") or self.detector is None or not alerts:
            return  # uncalibrated: no verdict to debounce; enrolled audio: declared normal
        stamp = window.start_time if when is None else when
        events = self.detector.update(
            score, stamp, int(window.index), verdict.flags, clock=window.clock
        )
        # with the episode's alert_id (the same as its ``id``)
        for event, fields in zip(events, self.episode_audio.events(events), strict=True):
            if event.event == "alert":
                fields.update(
                    self.alert_audio.alert_fields(
                        event.time, int(window.index), ref, self._domain_of[ref],
                        clipped=q.clipped, level_dbfs=record.get("level_dbfs"),
                    )
                )  # fmt: skip
            self._emit_event(fields)
        self.episode_audio.keep(  # the episode's audio, for `edgeasd feedback`
            window.samples,
            {
                **record,
                "unix_time": stamp,
                "window_index": int(window.index),
                "model": self.info.id,
            },
            events,
        )

    # ------------------------------------------------------------------ reload, shutdown

    def _shutdown(self) -> None:
        self.notifier.stopping()
        if hasattr(self, "status"):  # it started: say why it stops, then that it stopped
            lifecycle.info("%s", lines.stopping(self))
        self._cancel_commands()
        if hasattr(self, "server"):
            self.server.close()
        if getattr(self, "episodes", None) is not None:
            self.episodes.save(self.detector, self.signal_watch)  # with the peak so far
        if hasattr(self, "status"):
            self.status.update(state="stopped")
        if getattr(self, "sinks", None) is not None:
            self.sinks.close()
        if getattr(self, "alert_audio", None) is not None:
            self.alert_audio.close()  # finishes the queued alert audio writes
        if hasattr(self, "status"):
            lifecycle.info("%s", lines.stopped(self))


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 2)
