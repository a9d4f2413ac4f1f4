"""doctor's network checks against a real Mosquitto, real ports and unit files on disk."""

from __future__ import annotations

import socket
from pathlib import Path

from edgeasd.config.fleet import MetricsConfig, MqttConfig
from edgeasd.fleet import reach

from .conftest import free_port, make_ca

REPO = Path(__file__).resolve().parents[2]
SHIPPED_UNIT = REPO / "systemd" / "edgeasd.service"


def test_broker_reachable_and_unreachable(broker):
    b = broker()
    ok = reach.check_broker(MqttConfig(enabled=True, host="127.0.0.1", port=b.port))
    assert ok.level == "ok" and f"127.0.0.1:{b.port}" in ok.detail
    b.kill()
    down = reach.check_broker(MqttConfig(enabled=True, host="127.0.0.1", port=b.port))
    assert down.level == "fail" and "cannot reach the MQTT broker" in down.detail
    assert "Connection refused" in down.detail and "mqtt.host" in down.help
    assert reach.check_broker(MqttConfig(enabled=False)) is None


def test_broker_tls_verified_and_refused(broker, tmp_path):
    certs = make_ca(tmp_path / "pki")
    b = broker(tls=certs)
    good = MqttConfig(
        enabled=True, host="127.0.0.1", port=b.port, tls=True, ca_file=str(certs["ca"])
    )
    ok = reach.check_broker(good)
    assert ok.level == "ok" and "TLS verified (TLSv1." in ok.detail
    unknown_ca = MqttConfig(enabled=True, host="127.0.0.1", port=b.port, tls=True)
    bad = reach.check_broker(unknown_ca)
    assert bad.level == "fail" and "TLS with the MQTT broker" in bad.detail
    assert "CERTIFICATE_VERIFY_FAILED" in bad.detail and "mqtt.ca_file" in bad.help
    plain = broker()  # TLS spoken to a plain listener
    wrong = reach.check_broker(
        MqttConfig(
            enabled=True, host="127.0.0.1", port=plain.port, tls=True, ca_file=str(certs["ca"])
        )
    )
    assert wrong.level == "fail" and "TLS listener" in wrong.help


def test_metrics_port_free_taken_and_absent():
    port = free_port()
    free = reach.check_metrics_port(MetricsConfig(http_port=port))
    assert free.level == "ok" and f"127.0.0.1:{port}" in free.detail
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        taken = reach.check_metrics_port(MetricsConfig(http_port=port))
    assert taken.level == "fail" and "taken by another program" in taken.detail
    assert reach.check_metrics_port(MetricsConfig()) is None
    assert reach.check_metrics_port(MetricsConfig(enabled=False, http_port=port)) is None


def _install(tmp_path: Path, *dropins: tuple[str, str]) -> Path:
    unit = tmp_path / "edgeasd.service"
    unit.write_text(SHIPPED_UNIT.read_text())
    for name, text in dropins:
        (tmp_path / "edgeasd.service.d").mkdir(exist_ok=True)
        (tmp_path / "edgeasd.service.d" / name).write_text(text)
    return unit


def test_the_shipped_unit_blocks_mqtt_and_metrics_until_the_dropins(tmp_path):
    mqtt = MqttConfig(enabled=True, host="127.0.0.1", port=1883)
    metrics = MetricsConfig(http_port=9108)
    unit = _install(tmp_path)
    found = reach.check_sandbox(mqtt, metrics, unit)
    assert [r.level for r in found] == ["fail", "fail"]
    assert "PrivateNetwork=yes" in found[0].detail and "the MQTT broker" in found[0].detail
    assert "mqtt-credentials.conf.example" in found[0].help
    assert "metrics.conf.example" in found[1].help
    # the shipped MQTT drop-in, with the broker's address in IPAddressAllow=
    example = (REPO / reach.MQTT_DROPIN).read_text().replace("192.0.2.10", "127.0.0.1")
    unit = _install(tmp_path, ("mqtt.conf", example))
    assert [r.level for r in reach.check_sandbox(mqtt, MetricsConfig(), unit)] == ["ok"]
    # ... left with its example address: the broker is still denied
    unit = _install(tmp_path, ("mqtt.conf", (REPO / reach.MQTT_DROPIN).read_text()))
    denied = reach.check_sandbox(mqtt, MetricsConfig(), unit)
    assert denied[0].level == "fail" and "IPAddressAllow=" in denied[0].detail


def test_no_unit_or_no_network_nothing_to_say(tmp_path):
    mqtt = MqttConfig(enabled=True)
    assert reach.check_sandbox(mqtt, MetricsConfig(), tmp_path / "absent.service") == []
    unit = _install(tmp_path)
    assert reach.check_sandbox(MqttConfig(), MetricsConfig(), unit) == []
