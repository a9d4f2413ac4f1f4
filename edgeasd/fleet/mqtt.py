"""The MQTT sink: events and a retained status to a broker, with store-and-forward.

Topics, under ``<topic_prefix>/<site>/<machine>`` (``mqtt`` section of the config):

- ``.../event/<kind>``: ``alert``, ``reminder``, ``recovered``, ``signal``, ``enrolled``
  events (alerts of ``kind`` ``no_signal`` included), QoS 1, the event's JSON (as in
  ``alerts.jsonl``) plus ``seq``, a number that increases by event and survives
  restarts; at-least-once delivery may repeat a message, a subscriber drops a ``seq``
  it has seen.
- ``.../status``: retained JSON (state, anomaly, last score, threshold, bank size per
  domain, model, version...), published on connect, after each event and every
  ``heartbeat_seconds`` (the heartbeat: its ``time`` tells the agent is alive).
- ``.../availability``: retained ``online``; the broker publishes the last will
  ``offline`` when the agent vanishes (and the agent itself on a clean stop).
- Home Assistant discovery (``<discovery_prefix>/binary_sensor|sensor/<node>/.../config``,
  retained): an "anomaly" binary sensor and a "score" sensor read from the status.

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
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeasd import __version__
from edgeasd.config.fleet import MqttConfig
from edgeasd.errors import ConfigError
from edgeasd.events import Record
from edgeasd.events import encode as encode_event
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
        message.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        queue_path: str | os.PathLike[str],
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        mqtt = _import_paho()
        self._mqtt = mqtt
        self.settings = cfg
        self.status = status
        self.machine = cfg.machine or socket.gethostname()
        self.base = base_topic(cfg)
        self.node_id = re.sub(r"[^A-Za-z0-9_-]", "_", f"edgeasd_{cfg.site}_{self.machine}")
        password = read_password(cfg)
        self.anomaly = False
        self.published = 0
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

    # ------------------------------------------------------------------ scoring thread

    def emit(self, event: Record) -> None:
        """Queue an event for publishing (durable on return; never waits for the network)."""
        kind = event.get("event")
        if kind not in KINDS:
            return
        if event.get("kind", "anomaly") == "anomaly":  # a dead microphone is no anomaly
            if kind == "alert":
                self.anomaly = True
            elif kind == "recovered":
                self.anomaly = False
        payload = encode_event(event).rstrip("\n").encode("utf-8")
        self.queue.put(kind, self.topic("event", kind), payload)
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
        """``online``, then the Home Assistant discovery configs (all retained)."""
        self.client.publish(self.topic("availability"), "online", qos=1, retain=True)
        if self.settings.homeassistant:
            for topic, config in self.discovery().items():
                self.client.publish(topic, json.dumps(config), qos=1, retain=True)

    def status_message(self) -> dict[str, Any]:
        """The retained status payload."""
        s = self.status() if self.status else {}
        last = s.get("last") or {}
        model = s.get("model") or {}
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "state": s.get("state", "unknown"),
            "anomaly": self.anomaly,
            "last_score": last.get("score"),
            "last_decision": last.get("decision"),
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
            "model": model,
            "sw_version": __version__,
        }
        common = {
            "state_topic": self.topic("status"),
            "availability_topic": self.topic("availability"),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        prefix = self.settings.discovery_prefix
        return {
            f"{prefix}/binary_sensor/{self.node_id}/anomaly/config": {
                **common,
                "name": "Anomaly",
                "unique_id": f"{self.node_id}_anomaly",
                "device_class": "problem",
                "value_template": "{{ 'ON' if value_json.anomaly else 'OFF' }}",
            },
            f"{prefix}/sensor/{self.node_id}/score/config": {
                **common,
                "name": "Anomaly score",
                "unique_id": f"{self.node_id}_score",
                "state_class": "measurement",
                "value_template": "{{ value_json.last_score }}",
            },
        }

    # ------------------------------------------------------------------ shutdown

    def close(self, timeout: float = 2.0) -> None:
        """Stop publishing; say ``offline`` if connected (waits at most ``timeout``).

        What was not acknowledged stays queued on disk and goes out after the next start.
        """
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._connected.is_set():
            info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
            self.client.disconnect()
        self.client.loop_stop()
        self.queue.close()


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
