"""Configuration sections for running in a fleet: ``mqtt`` and ``metrics``.

Kept apart from :mod:`edgeasd.config` (which lists them in :class:`~edgeasd.config.Config`)
together with their cross-key checks. Secrets never live in the YAML: a ``mqtt.password``
key is refused (:func:`refuse_secrets`); the password comes from ``mqtt.password_file`` or
from the systemd credential ``mqtt-password`` (``LoadCredential=``, read from
``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeasd.config.schema import _NULL, _opt
from edgeasd.errors import ConfigError

#: Keys refused in the ``mqtt`` section (secrets).
_SECRET_KEYS = ("password", "passwd", "secret", "token")


@dataclass(frozen=True)
class MqttConfig:
    """``mqtt``: publish events and a retained status to an MQTT broker."""

    enabled: bool = _opt(False, (bool,))
    host: str = _opt("localhost", (str,))
    # null = 8883 with TLS, else 1883 (the IANA ports)
    port: int | None = _opt(None, (int, _NULL), lo=1, hi=65535)
    site: str = _opt("site", (str,))
    machine: str | None = _opt(None, (str, _NULL))
    topic_prefix: str = _opt("edgeasd", (str,))
    client_id: str | None = _opt(None, (str, _NULL))
    username: str | None = _opt(None, (str, _NULL))
    password_file: str | None = _opt(None, (str, _NULL), path=True)
    tls: bool = _opt(False, (bool,))
    ca_file: str | None = _opt(None, (str, _NULL), path=True)
    cert_file: str | None = _opt(None, (str, _NULL), path=True)
    key_file: str | None = _opt(None, (str, _NULL), path=True)
    keepalive_seconds: int = _opt(60, (int,), lo=5, hi=65535)
    heartbeat_seconds: float = _opt(60.0, (float,), lo=1.0, hi=86400.0)
    queue_max_bytes: int = _opt(16777216, (int,), lo=65536, hi=2**40)
    homeassistant: bool = _opt(True, (bool,))
    discovery_prefix: str = _opt("homeassistant", (str,))


@dataclass(frozen=True)
class MetricsConfig:
    """``metrics``: Prometheus metrics, as a node_exporter text file and/or over HTTP."""

    enabled: bool = _opt(True, (bool,))
    # null = <runtime_dir>/edgeasd.prom
    textfile: str | None = _opt(None, (str, _NULL), path=True)
    textfile_interval_seconds: float = _opt(15.0, (float,), lo=1.0, hi=3600.0)
    http_port: int | None = _opt(None, (int, _NULL), lo=1, hi=65535)
    http_bind: str = _opt("127.0.0.1", (str,))
    allow_remote: bool = _opt(False, (bool,))


def refuse_secrets(data: Mapping[str, Any]) -> None:
    """Refuse a password (or other secret) written into the ``mqtt`` section."""
    section = data.get("mqtt")
    if not isinstance(section, Mapping):
        return
    for key in section:
        if str(key).lower() in _SECRET_KEYS:
            raise ConfigError(
                f"'mqtt.{key}' is not allowed: secrets never go into the configuration file",
                help="put the password alone in a file readable only by the service user and "
                "set mqtt.password_file to it, or pass it as the systemd credential "
                "'mqtt-password' (LoadCredential=, see "
                "systemd/edgeasd.service.d/mqtt-credentials.conf.example)",
            )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name: it may resolve to anything
        return False


def check(mqtt: MqttConfig, metrics: MetricsConfig) -> None:
    """Constraints between keys of both sections."""
    if metrics.http_port is not None and not metrics.allow_remote:
        if not is_loopback(metrics.http_bind):
            raise ConfigError(
                f"'metrics.http_bind' is {metrics.http_bind!r}, which other hosts can reach",
                help="the metrics endpoint has no authentication: keep 127.0.0.1 (scrape "
                "through a reverse proxy or node_exporter's textfile collector), or set "
                "metrics.allow_remote: true to serve it on the network anyway",
            )
    if bool(mqtt.cert_file) != bool(mqtt.key_file):
        raise ConfigError(
            "'mqtt.cert_file' and 'mqtt.key_file' go together (a TLS client certificate)",
            help="set both, or neither",
        )
    if (mqtt.ca_file or mqtt.cert_file) and not mqtt.tls:
        raise ConfigError(
            "'mqtt.ca_file' / 'mqtt.cert_file' are set but 'mqtt.tls' is false",
            help="set mqtt.tls: true to connect with TLS",
        )
    for key, forbidden in (("site", "/+#"), ("machine", "/+#"), ("topic_prefix", "+#")):
        value = getattr(mqtt, key)
        if value is not None and (any(c in value for c in forbidden) or value.strip("/") != value):
            raise ConfigError(
                f"'mqtt.{key}' is {value!r}: it must not contain {' or '.join(forbidden)} "
                "nor start or end with '/'",
                help="use a plain name such as 'plant-a' (it becomes part of the topic)",
            )
    if any(c in mqtt.discovery_prefix for c in "+#"):
        raise ConfigError(
            f"'mqtt.discovery_prefix' is {mqtt.discovery_prefix!r}: no '+' or '#' allowed",
            help="Home Assistant listens on 'homeassistant' unless configured otherwise",
        )
