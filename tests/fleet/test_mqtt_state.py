"""The MQTT state a real Mosquitto keeps, over the agent's life: the status of an alert
carries the alerted window, a reload hands over without going unavailable, a clean stop
leaves ``stopped``, retired discovery configs are removed, colliding machine names stay
two devices, and an episode carried over a restart does not flap."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest

from edgeasd.agent.alerts.detector import make_event
from edgeasd.config import config_from_dict
from edgeasd.config.fleet import MqttConfig
from edgeasd.fleet import ha_discovery
from edgeasd.fleet.observers import observers

pytest.importorskip("paho.mqtt.client")

from edgeasd.fleet.mqtt import MqttSink

BASE = "edgeasd/plant/pump1"


class _Board:
    """A status callable updated the way the daemon updates its StatusBoard."""

    def __init__(self, **fields) -> None:
        self.data = {"state": "running", "model": {"name": "m"}, "last": None, **fields}

    def __call__(self) -> dict:
        return json.loads(json.dumps(self.data))


def _cfg(port: int, **keys) -> MqttConfig:
    keys = {"site": "plant", "machine": "pump1", **keys}
    return MqttConfig(enabled=True, host="127.0.0.1", port=port, **keys)


def _drain(sink: MqttSink, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while (len(sink.queue) or not sink.connected) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.3)


def test_the_status_after_an_alert_carries_the_alerted_window(tmp_path, broker, subscribe) -> None:
    """The daemon hands the sinks the alert, then the window's record, then records it in
    its status board: the status published for the alert must show the alert's score."""
    b = broker()
    sub = subscribe(b.port, [f"{BASE}/#"])
    board = _Board(threshold=2.0)
    sink = MqttSink(_cfg(b.port), tmp_path / "q.sqlite", board)
    try:
        _drain(sink)
        for i, score in enumerate([1.0, 1.1, 7.5]):
            t = 1.7e9 + i
            window = make_event("window", t, index=i, score=score, decision="normal")
            if score > 2.0:
                sink.emit(make_event("alert", t, kind="anomaly", window_index=i, score=score))
            sink.emit(window)
            board.data["last"] = window  # recorded after the sinks got it
        sub.wait_for(
            lambda m: any(t.endswith("/status") and json.loads(p)["anomaly"] for t, p, _ in m),
            what="the alert's status",
        )
        time.sleep(0.5)
    finally:
        sink.close()
    statuses = sub.payloads("/status")
    alerting = [s for s in statuses if s["anomaly"]]
    assert alerting and all(s["last_score"] == 7.5 for s in alerting), statuses


def test_a_clean_stop_leaves_stopped_and_offline(tmp_path, broker, subscribe) -> None:
    b = broker()
    board = _Board()
    sink = MqttSink(_cfg(b.port), tmp_path / "q.sqlite", board)
    _drain(sink)
    board.data["state"] = "stopped"  # the daemon's shutdown, before the sinks close
    sink.close()
    late = subscribe(b.port, [f"{BASE}/#"])
    msgs = late.wait_for(lambda m: len(m) >= 2, what="retained status and availability")
    retained = {t: p for t, p, r in msgs if r}
    assert json.loads(retained[f"{BASE}/status"])["state"] == "stopped"
    assert retained[f"{BASE}/availability"] == b"offline"


def test_a_reload_changing_mqtt_keys_never_goes_unavailable(
    tmp_path, broker, subscribe, caplog
) -> None:
    b = broker()
    sub = subscribe(b.port, [f"{BASE}/availability", f"{BASE}/status"])
    paths = SimpleNamespace(state_dir=tmp_path, runtime_dir=tmp_path)

    def config(heartbeat: float):
        mqtt = {"enabled": True, "host": "127.0.0.1", "port": b.port, "site": "plant"}
        mqtt |= {"machine": "pump1", "heartbeat_seconds": heartbeat}
        return config_from_dict({"mqtt": mqtt, "metrics": {"enabled": False}})

    board = _Board()
    current = observers(config(30.0), paths, board)
    _drain(current[0])
    current[0].emit(make_event("alert", 1.7e9, kind="anomaly", window_index=0, score=9.0))
    current[0].emit(make_event("window", 1.7e9, index=0, score=9.0))
    _drain(current[0])
    with caplog.at_level(logging.INFO, logger="edgeasd.fleet.mqtt"):
        for heartbeat in (31.0, 32.0, 33.0):
            previous = list(current)
            current = observers(config(heartbeat), paths, board, previous)
            for obs in previous:
                obs.close()  # what EventSinks.close does with the old observers
            _drain(current[0])
    time.sleep(1.0)  # a last will would arrive by now
    try:
        availability = [p for t, p, _ in sub.messages if t.endswith("/availability")]
        statuses = [json.loads(p) for t, p, _ in sub.messages if t.endswith("/status")]
    finally:
        current[0].close()
    assert b"offline" not in availability, availability
    assert "connection" not in caplog.text.replace("MQTT connected", ""), caplog.text
    assert all(s["anomaly"] for s in statuses[2:]), "the reload lost the ongoing episode"
    assert "already connected" not in b.log.read_text()


def test_retired_discovery_configs_are_removed(tmp_path, broker, subscribe) -> None:
    b = broker()
    queue = tmp_path / "q.sqlite"
    legacy = ha_discovery.legacy_node_id("plant", "pump_1")
    legacy_topic = f"homeassistant/sensor/{legacy}/score/config"
    seeder = subscribe(b.port, ["x/none"])  # an agent of edgeasd 0.1.0 published this
    seeder.client.publish(legacy_topic, '{"name": "old"}', qos=1, retain=True).wait_for_publish(5)
    sink = MqttSink(_cfg(b.port, machine="pump_1"), queue, _Board())
    _drain(sink)
    sink.close()
    first = {t for t, p, r in subscribe(b.port, ["homeassistant/#"]).wait_for(
        lambda m: len(m) >= 6, what="configs") if r and p}  # fmt: skip
    assert legacy_topic not in first and len(first) == 6
    # renamed machine: the old device's configs, status and availability go
    sink = MqttSink(_cfg(b.port, machine="pump-1"), queue, _Board())
    _drain(sink)
    sink.close()
    late = subscribe(b.port, ["homeassistant/#", "edgeasd/#"])
    msgs = late.wait_for(lambda m: len(m) >= 8, what="retained messages")
    time.sleep(0.5)
    retained = {t for t, p, r in late.messages if r and p}
    node = ha_discovery.node_id("plant", "pump-1")
    assert {t for t in retained if t.startswith("homeassistant/")} == set(
        ha_discovery.all_config_topics("homeassistant", node)
    ), msgs
    assert not any("/pump_1/" in t for t in retained)
    # homeassistant: false removes them all
    sink = MqttSink(_cfg(b.port, machine="pump-1", homeassistant=False), queue, _Board())
    _drain(sink)
    sink.close()
    latest = subscribe(b.port, ["homeassistant/#", "edgeasd/#"])
    latest.wait_for(lambda m: len(m) >= 2, what="retained status")
    time.sleep(0.5)
    assert not [t for t, p, r in latest.messages if r and p and t.startswith("homeassistant/")]


def test_two_machines_whose_old_ids_collide_stay_connected(tmp_path, broker, subscribe) -> None:
    b = broker()
    sub = subscribe(b.port, ["homeassistant/#"])
    sinks = [
        MqttSink(_cfg(b.port, machine=name), tmp_path / f"{i}.sqlite", _Board())
        for i, name in enumerate(("pump.4", "pump_4"))
    ]
    try:
        for sink in sinks:
            _drain(sink)
        time.sleep(3)  # two clients with one id would knock each other off within a second
        assert all(s.connected for s in sinks)
        assert sinks[0].client._client_id != sinks[1].client._client_id
    finally:
        for sink in sinks:
            sink.close()
    ids = {json.loads(p)["unique_id"] for t, p, _ in sub.messages if p}
    assert len(ids) == 12
    assert b.log.read_text().count("already connected") == 0


def test_an_episode_carried_over_a_restart_does_not_flap(tmp_path, broker, subscribe) -> None:
    """The daemon restores an ongoing episode into its status before building the sinks."""
    b = broker()
    sub = subscribe(b.port, [f"{BASE}/status"])
    alert = {"id": "alert-1", "time": "2026-12-07T12:00:00.000+00:00", "score": 9.0}
    sink = MqttSink(_cfg(b.port), tmp_path / "q.sqlite", _Board(anomaly=True, last_alert=alert))
    try:
        _drain(sink)
    finally:
        sink.close()
    statuses = sub.payloads("/status")
    assert statuses and all(s["anomaly"] for s in statuses)
    assert statuses[0]["last_alert"]["id"] == "alert-1"
