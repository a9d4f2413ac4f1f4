"""Prometheus metrics of the agent: a node_exporter text file, and optionally ``/metrics``.

:class:`Metrics` is an event observer (it sees every per-window record and event the
daemon emits) with its own :class:`prometheus_client.CollectorRegistry`. Gauges read from
the daemon's status snapshot (threshold, bank size per domain, audio overflows, state)
and from the MQTT sink (queue depth) are filled in at collection time.

Outputs:

- the textfile-collector format, rewritten every ``metrics.textfile_interval_seconds`` by
  a background thread through a temporary file and a rename (``write_to_textfile``), so
  node_exporter never reads half a file; default ``<runtime_dir>/edgeasd.prom``;
- ``http://<http_bind>:<http_port>/metrics`` when ``metrics.http_port`` is set (loopback
  unless ``metrics.allow_remote``; :mod:`edgeasd.config.fleet` checks that).

Every counter has a sample from the start (0 until it counts), so an ``increase()`` or
``rate()`` alert has data before the first event; the ``_created`` series of counters and
histograms are left out (:func:`prometheus_client.disable_created_metrics`: they double
the text file and no rule of ours reads them). The process's own resident memory, CPU
time, open files and start time come from :class:`prometheus_client.ProcessCollector`
(``process_*``, read from ``/proc``).

prometheus-client is a core dependency: measured on the daemon (after its imports), it
adds about 70 ms to the start and 3 MiB of RSS to a process of about 120 MiB.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest, start_http_server

from edgeasd import __version__
from edgeasd.atomic import write_bytes_atomic
from edgeasd.audio.quality import STATUSES
from edgeasd.config.fleet import MetricsConfig
from edgeasd.errors import ConfigError
from edgeasd.events import Record
from edgeasd.filemode import PUBLIC

#: Event kinds counted by ``edgeasd_events_total`` and ``edgeasd_mqtt_dropped_total``
#: (every one present at 0 from the start).
EVENT_KINDS = ("alert", "reminder", "recovered", "signal", "enrolled")
#: Window decisions counted by ``edgeasd_windows_total`` (:data:`edgeasd.agent.decision.STATES`
#: and ``enrolling``; a decision outside the list is counted too, from its first window).
DECISIONS = ("no-signal", "learning", "uncalibrated", "anomalous", "normal", "enrolling")

log = logging.getLogger(__name__)

#: Latency buckets in seconds for embedding and scoring one window. Measured per window
#: (benchmarks/bench_daemon.py, BENCHMARKS.md): the shipped spectral model embeds a 10 s
#: window in about 5-30 ms on one core of a small CPU, bank scoring takes 0.05-5 ms from
#: a few hundred to 100k references; the buckets span 0.5 ms to 2.5 s around both.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STATES = ("starting", "learning", "running", "stopped")


class _StatusCollector:
    """Gauges and counters read at collection time from the status snapshot and the MQTT sink."""

    def __init__(self, status: Callable[[], dict[str, Any]] | None, mqtt: Any | None) -> None:
        self.status = status
        self.mqtt = mqtt

    def collect(self):
        s = self.status() if self.status else {}
        state = GaugeMetricFamily(
            "edgeasd_state", "1 for the agent's current state", labels=["state"]
        )
        for name in STATES:
            state.add_metric([name], float(s.get("state") == name))
        yield state
        threshold = s.get("threshold")
        if threshold is not None:
            yield GaugeMetricFamily(
                "edgeasd_threshold", "Decision threshold of the anomaly score", value=threshold
            )
        bank = GaugeMetricFamily(
            "edgeasd_bank_references", "References in the bank, by domain tag", labels=["domain"]
        )
        for domain, n in sorted((s.get("bank") or {}).items()):
            bank.add_metric([str(domain)], float(n))
        yield bank
        source = s.get("source") or {}
        for key, help_text in (
            ("overflows", "Audio input overflows reported by the capture device"),
            ("dropped", "Audio frames dropped because the capture ring was full"),
        ):  # 0 for a source that cannot overflow (a file)
            name = f"edgeasd_audio_{key}"
            yield CounterMetricFamily(name, help_text, value=float(source.get(key, 0)))
        if self.mqtt is not None:
            yield GaugeMetricFamily(
                "edgeasd_mqtt_queue_depth",
                "Events waiting in the MQTT store-and-forward queue",
                value=len(self.mqtt.queue),
            )
            yield GaugeMetricFamily(
                "edgeasd_mqtt_connected",
                "1 while connected to the MQTT broker",
                value=float(self.mqtt.connected),
            )
            dropped = CounterMetricFamily(
                "edgeasd_mqtt_dropped",
                "Queued MQTT messages dropped because the queue was full, by event kind",
                labels=["kind"],
            )
            counts = dict.fromkeys(EVENT_KINDS, 0) | dict(self.mqtt.queue.dropped)
            for kind, n in sorted(counts.items()):
                dropped.add_metric([kind], float(n))
            yield dropped


class Metrics:
    """Prometheus metrics fed by the daemon's records and events.

    Parameters
    ----------
    cfg : MetricsConfig
    textfile : path-like
        Where the textfile-collector output goes (``metrics.textfile`` or its default).
    status : callable, optional
        Returns the daemon's status snapshot.
    mqtt : MqttSink, optional
        For the queue depth and connection state.
    start : bool
        Start the writer thread and the HTTP endpoint (False: call :meth:`write` yourself).

    Raises
    ------
    ConfigError
        The HTTP endpoint cannot listen on ``http_bind:http_port``.
    """

    def __init__(
        self,
        cfg: MetricsConfig,
        textfile: str | os.PathLike[str],
        status: Callable[[], dict[str, Any]] | None = None,
        mqtt: Any | None = None,
        *,
        start: bool = True,
    ) -> None:
        self.settings = cfg
        self.textfile = Path(textfile)
        self.mqtt = mqtt
        disable_created_metrics()  # process-wide: this registry is the agent's only one
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        self.windows = Counter(
            "edgeasd_windows", "Windows processed, by decision", ["decision"], registry=r
        )
        for decision in DECISIONS:
            self.windows.labels(decision)
        self.scored = Counter("edgeasd_windows_scored", "Windows scored", registry=r)
        self.last_score = Gauge(
            "edgeasd_last_score", "Anomaly score of the last window", registry=r
        )
        self.last_window = Gauge(
            "edgeasd_last_window_timestamp_seconds",
            "UNIX time of the last window processed (its first sample); 0 before the first",
            registry=r,
        )
        self.events = Counter("edgeasd_events", "Events raised, by kind", ["kind"], registry=r)
        for kind in EVENT_KINDS:
            self.events.labels(kind)  # present at 0 from the start
        self.anomaly = Gauge("edgeasd_anomaly", "1 while an alert is ongoing", registry=r)
        self.signal = Gauge(
            "edgeasd_signal_state",
            "1 for the current signal quality status",
            ["status"],
            registry=r,
        )
        for status_name in STATUSES:
            self.signal.labels(status_name).set(float(status_name == "ok"))
        self.enrollments = Counter("edgeasd_enrollments", "Enrollments committed", registry=r)
        self.embed = Histogram(
            "edgeasd_embed_seconds",
            "Embedding time per window",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.score = Histogram(
            "edgeasd_score_seconds",
            "Bank scoring time per window",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        build = Info("edgeasd_build", "Version of the agent and its model", registry=r)
        model = ((status() if status else {}).get("model")) or {}
        build.info(
            {
                "version": __version__,
                "model": str(model.get("name", "")),
                "model_id": str(model.get("id", "")),
                "python": platform.python_version(),
            }
        )
        r.register(_StatusCollector(status, mqtt))
        self._stop = threading.Event()
        self._http = None
        self._thread = None
        if start:
            self._start()

    def _start(self) -> None:
        cfg = self.settings
        if cfg.http_port is not None:
            try:
                self._http, _ = start_http_server(cfg.http_port, cfg.http_bind, self.registry)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {cfg.http_bind}:{cfg.http_port}: {exc}",
                    help="choose a free metrics.http_port (or set it to null)",
                ) from None
            log.info("metrics on http://%s:%d/metrics", cfg.http_bind, cfg.http_port)
        self._thread = threading.Thread(target=self._run, name="edgeasd-metrics", daemon=True)
        self._thread.start()

    def emit(self, event: Record) -> None:
        """Account one per-window record or event."""
        kind = event.get("event")
        if kind == "window":
            self.windows.labels(str(event.get("decision", "unknown"))).inc()
            when = event_time(event)
            if when is not None:
                self.last_window.set(when)
            if event.get("score") is not None:
                self.scored.inc()
                self.last_score.set(event["score"])
            if event.get("embed_ms") is not None:
                self.embed.observe(event["embed_ms"] / 1000.0)
            if event.get("score_ms") is not None:
                self.score.observe(event["score_ms"] / 1000.0)
            return
        self.events.labels(str(kind)).inc()
        if kind == "alert":
            self.anomaly.set(1)
        elif kind == "recovered":
            self.anomaly.set(0)
        elif kind == "enrolled":
            self.enrollments.inc()
        elif kind == "signal" and event.get("status") in STATUSES:
            for status_name in STATUSES:
                self.signal.labels(status_name).set(float(status_name == event["status"]))

    def write(self) -> None:
        """Write the text file now (atomically: a temporary file renamed over it)."""
        self.textfile.parent.mkdir(parents=True, exist_ok=True)
        # node_exporter reads it as another user: the umask decides, as it did for
        # prometheus_client's write_to_textfile; no fsync (rewritten every interval)
        write_bytes_atomic(self.textfile, generate_latest(self.registry), PUBLIC, fsync=False)

    def _run(self) -> None:
        while True:
            try:
                self.write()
            except OSError as exc:  # a full or read-only disk must not stop the agent
                log.warning("cannot write metrics to %s: %s", self.textfile, exc)
            if self._stop.wait(self.settings.textfile_interval_seconds):
                return

    def close(self) -> None:
        """Stop the HTTP endpoint and the writer (after a last write)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            try:
                self.write()
            except OSError as exc:
                log.warning("cannot write metrics to %s: %s", self.textfile, exc)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def event_time(event: Record) -> float | None:
    """The UNIX time of a record's ISO ``time`` (None: missing or unreadable)."""
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return None
