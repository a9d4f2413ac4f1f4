"""Can the agent reach its broker and serve its metrics? Checks for ``edgeasd doctor``.

Each check answers what ``edgeasd run`` would meet, before it runs:

* :func:`check_broker`: a TCP connection to ``mqtt.host:port`` and, with ``mqtt.tls``, a TLS
  handshake verified as the agent verifies it (``mqtt.ca_file`` or the system's CAs, the
  client certificate). Credentials are not tried: a wrong password shows in the journal.
* :func:`check_metrics_port`: the ``metrics.http_port`` is free (or already serves
  edgeasd's metrics: the agent runs).
* :func:`check_sandbox`: the installed unit with its drop-ins lets the service reach the
  broker and serve the port. The shipped unit has no network (``PrivateNetwork=yes``,
  ``RestrictAddressFamilies=AF_UNIX``, ``IPAddressDeny=any``); the drop-ins in
  ``systemd/edgeasd.service.d/`` open it.

Each returns a :class:`Reach` (``level`` ok / warn / fail, what was found, what to do), or
None when there is nothing to check.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgeasd.config.fleet import MetricsConfig, MqttConfig, is_loopback

#: Where an administrator's unit and its drop-ins live.
UNIT = Path("/etc/systemd/system/edgeasd.service")
#: The drop-in examples, named in the advice.
MQTT_DROPIN = "systemd/edgeasd.service.d/mqtt-credentials.conf.example"
METRICS_DROPIN = "systemd/edgeasd.service.d/metrics.conf.example"


@dataclass(frozen=True)
class Reach:
    """One check's outcome: ``level`` (ok, warn, fail), ``detail`` and ``help``."""

    level: str
    detail: str
    help: str | None = None


def broker_port(mqtt: MqttConfig) -> int:
    """``mqtt.port``, else MQTT's standard port (8883 with TLS, 1883 without)."""
    return mqtt.port or (8883 if mqtt.tls else 1883)


def check_broker(mqtt: MqttConfig, timeout: float = 3.0) -> Reach | None:
    """Connect to the broker (and shake hands over TLS when configured); None when disabled."""
    if not mqtt.enabled:
        return None
    port = broker_port(mqtt)
    where = f"{mqtt.host}:{port}"
    try:
        sock = socket.create_connection((mqtt.host, port), timeout=timeout)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return Reach(
            "fail",
            f"cannot reach the MQTT broker {where}: {reason}",
            "check mqtt.host and mqtt.port, that the broker runs (on it: systemctl status "
            "mosquitto) and that no firewall is in between; events wait on disk meanwhile",
        )
    with sock:
        if not mqtt.tls:
            return Reach("ok", f"MQTT broker {where} reachable (no TLS)")
        try:
            context = ssl.create_default_context(cafile=mqtt.ca_file)
            if mqtt.cert_file:
                context.load_cert_chain(mqtt.cert_file, mqtt.key_file)
            sock.settimeout(timeout)
            with context.wrap_socket(sock, server_hostname=mqtt.host) as tls:
                version = tls.version()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            return Reach(
                "fail",
                f"TLS with the MQTT broker {where} failed: {reason}",
                "a broker certificate from a private CA needs mqtt.ca_file (that CA's PEM); "
                "its name must match mqtt.host; is the port the broker's TLS listener?",
            )
    return Reach("ok", f"MQTT broker {where} reachable, TLS verified ({version})")


def check_metrics_port(metrics: MetricsConfig, timeout: float = 2.0) -> Reach | None:
    """Whether ``metrics.http_port`` can be served; None without an HTTP endpoint."""
    if not metrics.enabled or metrics.http_port is None:
        return None
    where = f"{metrics.http_bind}:{metrics.http_port}"
    family = socket.AF_INET6 if ":" in metrics.http_bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((metrics.http_bind, metrics.http_port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return Reach(
                    "fail",
                    f"cannot serve metrics on {where}: {exc.strerror or exc}",
                    "set metrics.http_bind to an address of this machine (127.0.0.1)",
                )
        else:
            return Reach("ok", f"metrics port {where} free for http://{where}/metrics")
    host = f"[{metrics.http_bind}]" if family == socket.AF_INET6 else metrics.http_bind
    try:
        with urllib.request.urlopen(
            f"http://{host}:{metrics.http_port}/metrics", timeout=timeout
        ) as reply:
            if b"edgeasd_build_info" in reply.read(1 << 20):
                return Reach("ok", f"http://{where}/metrics serves the running agent's metrics")
    except OSError:
        pass
    return Reach(
        "fail",
        f"metrics port {where} is taken by another program",
        "choose another metrics.http_port (see `ss -ltnp` for who holds this one)",
    )


def unit_settings(unit: Path) -> dict[str, str] | None:
    """The unit's ``[Service]`` settings with its drop-ins applied (the last one wins).

    Returns None when ``unit`` does not exist (the service is not installed). Drop-ins are
    ``<unit>.d/*.conf`` in name order, as systemd reads them; list settings
    (``IPAddressAllow=``) accumulate, an empty assignment resets them.
    """
    if not unit.is_file():
        return None
    files = [unit, *sorted(Path(f"{unit}.d").glob("*.conf"))]
    settings: dict[str, str] = {}
    for file in files:
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            if key in ("IPAddressAllow", "IPAddressDeny", "RestrictAddressFamilies"):
                settings[key] = f"{settings.get(key, '')} {value}".strip() if value else ""
            else:
                settings[key] = value
    return settings


def _allowed(allow: str, host: str) -> bool:
    """Whether ``IPAddressAllow=`` words admit every address ``host`` resolves to."""
    words = allow.split()
    if "any" in words:
        return True
    nets = []
    for w in words:
        if w == "localhost":
            nets += [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
        elif w == "link-local":
            nets += [ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/64")]
        else:
            try:
                nets.append(ipaddress.ip_network(w, strict=False))
            except ValueError:
                continue
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(
        any(ipaddress.ip_address(a.split("%")[0]) in n for n in nets) for a in addresses
    )


def check_sandbox(mqtt: MqttConfig, metrics: MetricsConfig, unit: Path = UNIT) -> list[Reach]:
    """What the installed unit's network sandbox blocks of the configured connections.

    Returns
    -------
    list of Reach
        Empty when the service is not installed or uses no network; one ``fail`` per
        connection the unit blocks, each naming the drop-in that opens it; else one ``ok``.
    """
    settings = unit_settings(unit)
    wanted = []
    if mqtt.enabled:
        wanted.append(("the MQTT broker", f"{mqtt.host}:{broker_port(mqtt)}", MQTT_DROPIN))
    if metrics.enabled and metrics.http_port is not None:
        wanted.append(("the metrics endpoint", f"port {metrics.http_port}", METRICS_DROPIN))
    if settings is None or not wanted:
        return []
    private = settings.get("PrivateNetwork", "no").lower() in ("yes", "true", "1", "on")
    families = settings.get("RestrictAddressFamilies", "")
    no_ip = bool(families) and not families.startswith("~") and "AF_INET" not in families
    out = []
    dropins = Path(f"{unit}.d")
    for what, where, example in wanted:
        if private or no_ip:
            setting = "PrivateNetwork=yes" if private else f"RestrictAddressFamilies={families}"
            out.append(
                Reach(
                    "fail",
                    f"the installed unit {unit} has {setting}: the service cannot reach {what} "
                    f"({where})",
                    f"install {example} as {dropins}/{Path(example).name.removesuffix('.example')}"
                    " (it opens the network for this alone), then `systemctl daemon-reload && "
                    "systemctl restart edgeasd`",
                )
            )
        elif (
            what == "the MQTT broker"
            and "any" in settings.get("IPAddressDeny", "").split()
            and not _allowed(settings.get("IPAddressAllow", ""), mqtt.host)
        ):
            local = " (localhost)" if is_loopback(mqtt.host) else ""
            out.append(
                Reach(
                    "fail",
                    f"the installed unit denies IP addresses (IPAddressDeny=any) and its "
                    f"IPAddressAllow= does not list the broker {mqtt.host}{local}",
                    f"add the broker's address to IPAddressAllow= in {dropins}/, then "
                    "`systemctl daemon-reload && systemctl restart edgeasd`",
                )
            )
    if not out:
        out.append(
            Reach(
                "ok",
                f"the installed unit lets the service reach {wanted[0][0]}"
                + "".join(f" and {w[0]}" for w in wanted[1:]),
            )
        )
    return out
