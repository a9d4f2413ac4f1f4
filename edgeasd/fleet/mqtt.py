"""The MQTT sink: events and a retained status to a broker, with store-and-forward.

Topics, under ``<topic_prefix>/<site>/<machine>`` (``mqtt`` section of the config):

- ``.../event/<kind>``: ``alert``, ``reminder``, ``recovered``, ``signal``, ``enrolled``
  events (alerts of ``kind`` ``no_signal`` included), QoS 1, the event's JSON (as in
  ``alerts.jsonl``) plus ``seq``, a number that increases by event and survives
  restarts; at-least-once delivery may repeat a message, a subscriber drops a ``seq``
  it has seen.
- ``.../status``: retained JSON (state, anomaly, no signal, last score and window time,
  threshold, last alert, bank size per domain, model, version...), published on connect,
  after each event (once the window that raised it is recorded, so the status of an alert
  carries the alerted window's score), every ``heartbeat_seconds`` (the heartbeat: its
  ``time`` tells the agent is alive) and a last time on a clean stop (``stopped``).
- ``.../availability``: retained ``online``; the broker publishes the last will
  ``offline`` when the agent vanishes (and the agent itself on a clean stop).
- Home Assistant discovery (``<discovery_prefix>/binary_sensor|sensor/<node>/.../config``,
  retained): the entities of :mod:`edgeasd.fleet.ha_discovery`, all read from the status.
  Configs this agent published before and no longer does (``homeassistant: false``, a
  renamed site or machine, an older id) are cleared with empty retained payloads; the
  record of what was published is ``<state_dir>/mqtt-discovery.json``.

Times in the status are ISO 8601 with milliseconds and the ``+00:00``-style offset, as
in the events (:func:`edgeasd.events.iso_time`).

A reload that changes the ``mqtt`` section closes the old sink *before* the new one
connects (:func:`edgeasd.fleet.observers.observers`), with a clean ``DISCONNECT`` and
without ``offline`` when the new one keeps the same topics: the broker then discards the
old connection's last will and the device never shows unavailable.

Threads: :meth:`MqttSink.emit` runs on the scoring thread and only appends the event to
the on-disk queue (:class:`~edgeasd.fleet.mqtt_queue.DiskQueue`, one fsync'ed SQLite commit);
paho's network thread connects and reconnects; the sink's own publisher thread sends
the queue's head, waits for its ``PUBACK``, removes it and goes on, so messages leave in
order, one in flight. A slow or dead broker only makes the queue grow.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeasd import __version__
from edgeasd.config.fleet import MqttConfig
from edgeasd.errors import ConfigError
from edgeasd.events import Record, alert_summary, iso_time
from edgeasd.events import encode as encode_event
from edgeasd.fleet import ha_discovery
from edgeasd.fleet.mqtt_queue import DiskQueue

log = logging.getLogger(__name__)

#: Event kinds published (windows are not: they are in the status and the metrics).
KINDS = ("alert", "reminder", "recovered", "signal", "enrolled", "feedback", "removed", "restored")
#: Name of the systemd credential holding the password (``LoadCredential=mqtt-password:...``).
CREDENTIAL = "mqtt-password"
# paho's reconnect back-off: first retry after 1 s (a restarted broker is back within a
# second or two), doubling up to 30 s so that a long outage costs a connect every 30 s.
_RECONNECT_MIN, _RECONNECT_MAX = 1, 30


def read_password(cfg: MqttConfig, env: dict[str, str] | None = None) -> str | None:
    """The broker password: ``mqtt.password_file``, else the systemd credential, else None.

    Raises
    ------
    ConfigError
        The file cannot be read, or a password is given without ``mqtt.username``.
    """
    env = os.environ if env is None else env
    path: Path | None = None
    if cfg.password_file:
        path = Path(cfg.password_file)
    elif env.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL
        path = candidate if candidate.is_file() else None
    if path is None:
        return None
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the MQTT password from {path}: {exc}",
            help="make the file readable by the service user (or fix mqtt.password_file)",
        ) from None
    if cfg.username is None:
        raise ConfigError(
            f"an MQTT password is given ({path}) but 'mqtt.username' is not set",
            help="set mqtt.username (MQTT sends a password only with a user name)",
        )
    return password


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ConfigError(
            "'mqtt.enabled' is true but the paho-mqtt package is not installed",
            help="pip install 'edgeasd[mqtt]' (or set mqtt.enabled: false)",
        ) from None
    return mqtt


class MqttSink:
    """Publishes events and status to an MQTT broker (see the module docstring).

    Parameters
    ----------
    cfg : MqttConfig
        The ``mqtt`` section.
    queue_path : path-like
        The store-and-forward database (``<state_dir>/mqtt-queue.sqlite``).
    status : callable, optional
        Returns the daemon's status snapshot (``StatusBoard.snapshot``) for the status
        message. Its ``anomaly``, ``no_signal`` and ``last_alert`` at construction carry an
        episode over a restart (the daemon restores them before the sinks).
    carry : dict, optional
        :meth:`carried` of the sink a reload replaces (its episode state wins over
        ``status``).
    """

    def __init__(
        self,
        cfg: MqttConfig,
        queue_path: str | os.PathLike[str],
        status: Callable[[], dict[str, Any]] | None = None,
        *,
        carry: dict[str, Any] | None = None,
    ) -> None:
        mqtt = _import_paho()
        self._mqtt = mqtt
        self.settings = cfg
        self.status = status
        self.machine = cfg.machine or socket.gethostname()
        self.base = base_topic(cfg)
        self.node_id = ha_discovery.node_id(cfg.site, self.machine)
        password = read_password(cfg)
        start = {**(self.status() if self.status else {}), **(carry or {})}
        self.anomaly = bool(start.get("anomaly", False))
        self.no_signal = bool(start.get("no_signal", False))
        self.last_alert: dict[str, Any] | None = start.get("last_alert")
        self._last_window: dict[str, Any] | None = start.get("last_window")
        self._status_after_window = False  # an event waits for its window's record
        self.published = 0
        self._closed = False
        self._record_path = Path(queue_path).with_name("mqtt-discovery.json")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._announce = False
        self._status_due = 0.0
        self._failed_quietly = False  # a failed connect was logged since the last success
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or self.node_id,
            clean_session=True,
        )
        client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            try:
                client.tls_set(ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ConfigError(
                    f"cannot load the MQTT TLS files: {exc}",
                    help="check mqtt.ca_file, mqtt.cert_file and mqtt.key_file (PEM files "
                    "readable by the service user)",
                ) from None
        client.reconnect_delay_set(_RECONNECT_MIN, _RECONNECT_MAX)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self.client = client
        self.queue = DiskQueue(queue_path, cfg.queue_max_bytes)
        self.port = cfg.port or (8883 if cfg.tls else 1883)
        client.connect_async(cfg.host, self.port, cfg.keepalive_seconds)
        client.loop_start()  # paho's thread: connects, reconnects, reads and writes
        self._thread = threading.Thread(target=self._run, name="edgeasd-mqtt", daemon=True)
        self._thread.start()

    def topic(self, *parts: str) -> str:
        """``<prefix>/<site>/<machine>/<parts...>``."""
        return "/".join((self.base, *parts))

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def carried(self) -> dict[str, Any]:
        """The episode state a reload's successor takes over (see ``carry``)."""
        return {
            "anomaly": self.anomaly,
            "no_signal": self.no_signal,
            "last_alert": self.last_alert,
            "last_window": self._last_window,
        }

    # ------------------------------------------------------------------ scoring thread

    def emit(self, event: Record) -> None:
        """Queue an event for publishing (durable on return; never waits for the network).

        A window record is not published; it becomes the status's last window, and if an
        event of that window came before it, the status is published now.
        """
        kind = event.get("event")
        if kind == "window":
            self._last_window = dict(event)
            if self._status_after_window:
                self._status_after_window = False
                self._status_due = 0.0
                self._wake.set()
            return
        if kind not in KINDS:
            return
        if kind in ("alert", "recovered"):
            on = kind == "alert"
            if event.get("kind", "anomaly") == "anomaly":
                self.anomaly = on
            elif event.get("kind") == "no_signal":  # a dead microphone is no anomaly
                self.no_signal = on
        if kind == "alert":
            self.last_alert = alert_summary(event)
        payload = encode_event(event).rstrip("\n").encode("utf-8")
        self.queue.put(kind, self.topic("event", kind), payload)
        if "window_index" in event:  # the daemon records that window next
            self._status_after_window = True
        else:
            self._status_due = 0.0  # publish the status after the event
            self._wake.set()

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            level = logging.DEBUG if self._failed_quietly else logging.WARNING
            log.log(
                level, "MQTT broker %s:%d refused the connection: %s", *self._where, reason_code
            )
            self._failed_quietly = True
            return
        log.info("MQTT connected to %s:%d", *self._where)
        self._failed_quietly = False
        self._announce = True
        self._status_due = 0.0  # a restarted broker may have lost the retained status
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # the first failure in a row at WARNING, the retries (every 1 to 30 s) at DEBUG
        level = logging.DEBUG if self._failed_quietly else logging.WARNING
        log.log(level, "MQTT broker %s:%d unreachable; events wait on disk", *self._where)
        self._failed_quietly = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("MQTT connection to %s:%d lost (%s); queueing", *self._where, reason_code)
        self._connected.clear()

    @property
    def _where(self) -> tuple[str, int]:
        return self.settings.host, self.port

    # ------------------------------------------------------------------ publisher thread

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._connected.wait(0.5):
                continue
            try:
                if self._announce:
                    self._announce = False
                    self._publish_presence()
                if time.monotonic() >= self._status_due:
                    self._publish_status()
                msg = self.queue.peek()
            except Exception:  # a bug here must not end publishing for good
                log.exception("MQTT publisher error")
                self._stop.wait(1.0)
                continue
            if msg is None:
                self._wake.wait(max(0.0, min(1.0, self._status_due - time.monotonic())))
                self._wake.clear()
                continue
            body = json.loads(msg.payload)
            body["seq"] = msg.seq
            data = json.dumps(body, separators=(",", ":"))
            info = self.client.publish(msg.topic, data, qos=1)
            if self._wait_published(info):
                self.queue.ack(msg.seq)
                self.published += 1

    def _wait_published(self, info: Any) -> bool:
        """Wait for the ``PUBACK`` of one message (False: stopping, or paho refused it).

        A message whose connection dropped stays with paho, which resends it after the
        reconnect: it is waited for, not published again.
        """
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self._stop.wait(0.5)
            return False
        while not info.is_published():
            if self._stop.is_set():
                return False
            try:
                info.wait_for_publish(0.5)
            except (RuntimeError, ValueError):  # sent while disconnected: rc stays NO_CONN
                self._stop.wait(0.05)
        return True

    def _publish_presence(self) -> None:
        """``online``, the Home Assistant discovery configs (all retained), and the removal
        of what this agent published before and no longer does."""
        self.client.publish(self.topic("availability"), "online", qos=1, retain=True)
        ha_discovery.publish_retained(
            lambda topic, payload: self.client.publish(topic, payload, qos=1, retain=True),
            self._record_path,
            base=self.base,
            configs=self.discovery() if self.settings.homeassistant else {},
            legacy=ha_discovery.legacy_config_topics(
                self.settings.discovery_prefix, self.settings.site, self.machine
            ),
        )

    def status_message(self) -> dict[str, Any]:
        """The retained status payload (times as in the events: ISO 8601, ``+00:00``)."""
        s = self.status() if self.status else {}
        last = self._last_window or s.get("last") or {}
        model = s.get("model") or {}
        return {
            "time": iso_time(time.time()),
            "state": s.get("state", "unknown"),
            "anomaly": self.anomaly,
            "no_signal": self.no_signal,
            "last_score": last.get("score"),
            "last_decision": last.get("decision"),
            "last_window_time": last.get("time"),
            "last_alert": self.last_alert,
            "threshold": s.get("threshold"),
            "threshold_source": s.get("threshold_source"),
            "bank": s.get("bank") or {},
            "bank_size": s.get("bank_size"),
            "windows_scored": s.get("windows_scored"),
            "alerts": s.get("alerts"),
            "model": {k: model.get(k) for k in ("name", "version", "id")},
            "version": __version__,
            "queue_depth": len(self.queue),
            "uptime_seconds": s.get("uptime_seconds"),
        }

    def _publish_status(self) -> None:
        self._status_due = time.monotonic() + self.settings.heartbeat_seconds
        payload = json.dumps(self.status_message(), default=str)
        self.client.publish(self.topic("status"), payload, qos=1, retain=True)

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant MQTT discovery: config topic → config payload."""
        s = self.status() if self.status else {}
        model = (s.get("model") or {}).get("name", "edgeasd")
        device = {
            "identifiers": [self.node_id],
            "name": f"{self.machine} ({self.settings.site})",
            "manufacturer": "edgeasd",
            "model": str(model),
            "sw_version": __version__,
        }
        return ha_discovery.configs(
            prefix=self.settings.discovery_prefix,
            node=self.node_id,
            status_topic=self.topic("status"),
            availability_topic=self.topic("availability"),
            heartbeat_seconds=self.settings.heartbeat_seconds,
            device=device,
        )

    # ------------------------------------------------------------------ shutdown

    def close(self, timeout: float = 2.0, handover: bool = False) -> None:
        """Stop publishing: the last status (the daemon's ``stopped``) and ``offline`` if
        connected (waits at most ``timeout`` for each), then a clean ``DISCONNECT``.

        What was not acknowledged stays queued on disk and goes out after the next start.
        A second call does nothing.

        Parameters
        ----------
        handover : bool
            A reload's new sink takes over the same topics: leave the retained status
            and ``online`` as they are (the clean disconnect discards the last will).
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._connected.is_set():
            if not handover:
                payload = json.dumps(self.status_message(), default=str)
                self._publish_wait(self.topic("status"), payload, timeout)
                self._publish_wait(self.topic("availability"), "offline", timeout)
            self._connected.clear()  # the disconnect below is no lost connection
            self.client.disconnect()
        self.client.loop_stop()
        self.queue.close()

    def _publish_wait(self, topic: str, payload: str, timeout: float) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            pass


def base_topic(cfg: MqttConfig) -> str:
    """``<prefix>/<site>/<machine>``: the root of this agent's topics."""
    return f"{cfg.topic_prefix}/{cfg.site}/{cfg.machine or socket.gethostname()}"


def queue_event(cfg: MqttConfig, queue_path: str | os.PathLike[str], event: Record) -> None:
    """Queue an event on disk for the daemon to publish (a command run while it is stopped).

    The daemon's :class:`MqttSink` publishes what its store-and-forward queue holds once it
    runs and reaches the broker, in order; no connection is made here.
    """
    kind = event.get("event")
    if not cfg.enabled or kind not in KINDS:
        return
    payload = encode_event(event).rstrip("\n").encode("utf-8")
    queue = DiskQueue(queue_path, cfg.queue_max_bytes)
    try:
        queue.put(str(kind), f"{base_topic(cfg)}/event/{kind}", payload)
    finally:
        queue.close()
