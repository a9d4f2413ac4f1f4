"""The MQTT sink in-process against a real Mosquitto: topics, status, Home Assistant
discovery, store-and-forward across a broker outage, TLS and passwords, config checks."""

from __future__ import annotations

import json
import time

import pytest

from edgeasd.agent.alerts.detector import make_event
from edgeasd.config import config_from_dict
from edgeasd.config.fleet import MqttConfig
from edgeasd.errors import ConfigError

from .conftest import make_ca

pytest.importorskip("paho.mqtt.client")

from edgeasd.fleet.mqtt import MqttSink, read_password


def _status() -> dict:
    return {
        "state": "running",
        "last": {"score": 4.5, "decision": "anomalous"},
        "threshold": 2.0,
        "threshold_source": "bank quantile",
        "bank": {"source": 7, "target": 3},
        "bank_size": 10,
        "model": {"name": "test-model", "version": "1", "id": "abc"},
    }


def _sink(tmp_path, port: int, **keys) -> MqttSink:
    cfg = MqttConfig(
        enabled=True, host="127.0.0.1", port=port, site="plant", machine="pump1", **keys
    )
    return MqttSink(cfg, tmp_path / "queue.sqlite", _status)


def _alert(i: int) -> dict:
    return make_event("alert", 1.7e9 + i, score=5.0 + i, threshold=2.0, window_index=i)


def test_events_status_and_discovery_reach_a_subscriber(tmp_path, broker, subscribe) -> None:
    b = broker()
    sub = subscribe(b.port, ["edgeasd/#", "homeassistant/#"])
    sink = _sink(tmp_path, b.port)
    try:
        sink.emit(make_event("window", 1.7e9, score=1.0))  # windows are not published
        sink.emit(_alert(1))
        sink.emit(make_event("recovered", 1.7e9 + 2, score=1.0, threshold=2.0))
        sub.wait_for(lambda m: any(t.endswith("/event/recovered") for t, _, _ in m))
    finally:
        sink.close()
    msgs = sub.wait_for(lambda m: ("edgeasd/plant/pump1/availability", b"offline", False) in m)
    topics = [t for t, _, _ in msgs]
    assert not any("window" in t for t in topics)
    alert, recovered = sub.payloads("/event/alert")[0], sub.payloads("/event/recovered")[0]
    assert alert["score"] == 6.0 and alert["window_index"] == 1 and alert["event"] == "alert"
    assert recovered["seq"] == alert["seq"] + 1
    assert ("edgeasd/plant/pump1/availability", b"online", False) in msgs
    status = sub.payloads("edgeasd/plant/pump1/status")[-1]
    assert status["state"] == "running" and status["last_score"] == 1.0  # the last window
    assert status["bank"] == {"source": 7, "target": 3} and status["threshold"] == 2.0
    assert status["model"]["name"] == "test-model" and "version" in status
    assert isinstance(status["queue_depth"], int)
    ha = {t: json.loads(p) for t, p, _ in msgs if t.startswith("homeassistant/")}
    binary = ha["homeassistant/binary_sensor/edgeasd_plant_pump1/anomaly/config"]
    score = ha["homeassistant/sensor/edgeasd_plant_pump1/score/config"]
    assert binary["state_topic"] == score["state_topic"] == "edgeasd/plant/pump1/status"
    assert binary["availability"][0]["topic"] == "edgeasd/plant/pump1/availability"
    assert binary["unique_id"] != score["unique_id"]
    assert "value_json.anomaly" in binary["value_template"]
    assert "value_json.last_score" in score["value_template"]


def test_retained_status_and_discovery_reach_a_late_subscriber(tmp_path, broker, subscribe) -> None:
    b = broker()
    sink = _sink(tmp_path, b.port)
    try:
        sink.emit(_alert(1))  # the status follows the event's window, with anomaly set
        sink.emit(make_event("window", 1.7e9 + 1, index=1, score=6.0))
        deadline = time.monotonic() + 20
        while len(sink.queue) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        sub = subscribe(b.port, ["edgeasd/#", "homeassistant/#"])
        msgs = sub.wait_for(lambda m: sum(r for _, _, r in m) >= 8, what="retained messages")
    finally:
        sink.close()
    retained = {t: p for t, p, r in msgs if r}
    assert retained["edgeasd/plant/pump1/availability"] == b"online"
    assert json.loads(retained["edgeasd/plant/pump1/status"])["anomaly"] is True
    assert len([t for t in retained if t.startswith("homeassistant/")]) == 6
    assert not any("/event/" in t for t in retained)  # events are not retained


def test_outage_queues_on_disk_and_delivers_in_order(tmp_path, broker, subscribe) -> None:
    b = broker()
    sub = subscribe(b.port, ["edgeasd/+/+/event/#"])
    sink = _sink(tmp_path, b.port)
    try:
        sink.emit(_alert(0))
        sub.wait_for(lambda m: len(m) == 1)
        b.kill()
        deadline = time.monotonic() + 20
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sink.connected
        for i in range(1, 6):
            sink.emit(_alert(i))
        assert len(sink.queue) >= 5  # waiting on disk
        b.start()
        msgs = sub.wait_for(lambda m: len({json.loads(p)["seq"] for _, p, _ in m}) == 6)
    finally:
        sink.close()
    seqs = [json.loads(p)["seq"] for _, p, _ in msgs]
    unique = list(dict.fromkeys(seqs))
    assert unique == sorted(unique)
    indices = {json.loads(p)["seq"]: json.loads(p)["window_index"] for _, p, _ in msgs}
    assert [indices[s] for s in unique] == list(range(6))


def test_queue_survives_a_restart_of_the_agent(tmp_path, broker, subscribe) -> None:
    """Events queued while the broker was down go out when a new sink starts on the queue."""
    b = broker()
    port = b.port
    b.kill()
    sink = _sink(tmp_path, port)
    for i in range(3):
        sink.emit(_alert(i))
    sink.close()
    b.start()
    sub = subscribe(port, ["edgeasd/+/+/event/#"])
    sink = _sink(tmp_path, port)
    try:
        msgs = sub.wait_for(lambda m: len(m) >= 3)
    finally:
        sink.close()
    assert [json.loads(p)["window_index"] for _, p, _ in msgs] == [0, 1, 2]


def test_tls_with_a_self_signed_ca(tmp_path, broker, subscribe) -> None:
    certs = make_ca(tmp_path / "pki")
    b = broker(tls=certs)
    sub = subscribe(b.port, ["edgeasd/#"], ca_certs=str(certs["ca"]))
    sink = _sink(tmp_path, b.port, tls=True, ca_file=str(certs["ca"]))
    try:
        sink.emit(_alert(1))
        msgs = sub.wait_for(lambda m: any(t.endswith("/event/alert") for t, _, _ in m))
    finally:
        sink.close()
    assert any(t == "edgeasd/plant/pump1/status" for t, _, _ in msgs)
    # without the CA the broker's certificate is refused: nothing is delivered
    sink = _sink(tmp_path / "untrusting", b.port, tls=True)
    try:
        sink.emit(_alert(2))
        time.sleep(2)
        assert not sink.connected and len(sink.queue) == 1
    finally:
        sink.close()


def test_password_from_a_systemd_credential(tmp_path, broker, subscribe, monkeypatch) -> None:
    b = broker(users={"agent": "s3cret pass", "reader": "r"})
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret pass\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    sink = _sink(tmp_path, b.port, username="agent")
    try:
        sink.emit(_alert(1))
        deadline = time.monotonic() + 20
        while len(sink.queue) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sink.queue) == 0 and sink.published == 1
    finally:
        sink.close()
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    sink = _sink(tmp_path / "w", b.port, username="agent", password_file=str(wrong))
    try:
        sink.emit(_alert(2))
        time.sleep(2)
        assert not sink.connected and len(sink.queue) == 1
    finally:
        sink.close()


def test_password_sources_and_refusals(tmp_path) -> None:
    cfg = MqttConfig(enabled=True, username="u")
    assert read_password(cfg, env={}) is None
    (tmp_path / "mqtt-password").write_text("from-cred\n")
    assert read_password(cfg, env={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-cred"
    f = tmp_path / "pw"
    f.write_text("from-file")
    with_file = MqttConfig(enabled=True, username="u", password_file=str(f))
    assert read_password(with_file, env={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-file"
    with pytest.raises(ConfigError, match=r"mqtt\.username"):
        read_password(MqttConfig(password_file=str(f)), env={})
    with pytest.raises(ConfigError, match="cannot read the MQTT password"):
        read_password(MqttConfig(username="u", password_file=str(tmp_path / "no")), env={})
    with pytest.raises(ConfigError, match="cannot load the MQTT TLS files"):
        MqttSink(MqttConfig(tls=True, ca_file=str(tmp_path / "no-ca.pem")), tmp_path / "q")
    assert not (tmp_path / "q").exists()  # nothing left behind
    with pytest.raises(ConfigError, match="secrets never go into the configuration") as exc:
        config_from_dict({"mqtt": {"enabled": True, "password": "hunter2"}})
    assert "hunter2" not in exc.value.message and "LoadCredential" in exc.value.help


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ({"site": "a/b"}, "mqtt.site"),
        ({"machine": "#"}, "mqtt.machine"),
        ({"topic_prefix": "/x"}, "mqtt.topic_prefix"),
        ({"cert_file": "/c.pem"}, "go together"),
        ({"ca_file": "/ca.pem"}, "mqtt.tls"),
        ({"port": 0}, "mqtt.port"),
    ],
)
def test_bad_mqtt_config_is_refused(keys, match) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"mqtt": keys})
