"""Home Assistant discovery against HA's schema (tests/fleet/ha_schema.py), read back from
a real Mosquitto: every entity validates, and what HA shows follows the agent's state
without ever rendering ``None`` into a number."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeasd.agent.alerts.detector import make_event
from edgeasd.config.fleet import MqttConfig
from edgeasd.fleet import ha_discovery

from .ha_schema import simulate, validate

pytest.importorskip("paho.mqtt.client")

from edgeasd.fleet.mqtt import MqttSink

BASE = "edgeasd/plant/pump1"


class _Board:
    """A status callable whose content the test changes (the daemon's StatusBoard)."""

    def __init__(self, **fields) -> None:
        self.data = {"state": "starting", "model": {"name": "m", "version": "1", "id": "x"}}
        self.data.update(fields)

    def __call__(self) -> dict:
        return json.loads(json.dumps(self.data))


def _retained(sub) -> dict[str, str]:
    out = {}
    for t, p, _ in sub.messages:
        out[t] = p.decode()
    return {t: p for t, p in out.items() if p}


def _states(sub) -> dict[str, dict]:
    """What HA shows for each discovered entity, from the messages received so far."""
    msgs = _retained(sub)
    shown = {}
    for topic, payload in msgs.items():
        if topic.startswith("homeassistant/") and topic.endswith("/config"):
            platform, obj = topic.split("/")[1], topic.split("/")[3]
            shown[obj] = simulate(platform, json.loads(payload), msgs)
    return shown


def _wait_status(sub, predicate, what: str) -> dict:
    sub.wait_for(
        lambda m: any(t == f"{BASE}/status" and predicate(json.loads(p)) for t, p, _ in m if p),
        timeout=30,
        what=what,
    )
    return sub.payloads(f"{BASE}/status")[-1]


def test_discovery_validates_and_follows_the_state(tmp_path, broker, subscribe) -> None:
    b = broker()
    sub = subscribe(b.port, ["edgeasd/#", "homeassistant/#"])
    board = _Board()
    cfg = MqttConfig(
        enabled=True, host="127.0.0.1", port=b.port, site="plant", machine="pump1",
        heartbeat_seconds=20.0,
    )  # fmt: skip
    sink = MqttSink(cfg, tmp_path / "q.sqlite", board)
    try:
        sub.wait_for(lambda m: sum(t.endswith("/config") for t, _, _ in m) == 6, what="configs")
        _wait_status(sub, lambda s: s["state"] == "starting", "the first status")
        configs = {
            t: json.loads(p) for t, p in _retained(sub).items() if t.startswith("homeassistant/")
        }
        assert sorted(t.split("/")[3] for t in configs) == sorted(
            o for _, o in ha_discovery.ENTITIES
        )
        for topic, config in configs.items():
            assert validate(topic.split("/")[1], config) == [], topic
            assert config["expire_after"] == 60  # three 20 s heartbeats
        assert len({c["unique_id"] for c in configs.values()}) == 6

        # nothing scored yet: the numbers are unavailable, never "None"
        shown = _states(sub)
        assert all(not s["errors"] for s in shown.values()), shown
        assert not shown["score"]["available"] and not shown["threshold"]["available"]
        assert not shown["last_alert"]["available"]
        assert shown["anomaly"]["state"] == "OFF" and shown["no_signal"]["state"] == "OFF"
        assert shown["state"]["state"] == "starting"

        board.data.update(state="running", threshold=2.0)
        sink.emit(make_event("window", time.time(), index=0, score=1.5, decision="normal"))
        t1 = time.time()
        sink.emit(
            make_event(
                "alert", time.time(), kind="anomaly", window_index=1, score=6.5, threshold=2.0,
                id="alert-x-w00000001", clip="alert-x-w00000001.flac", nearest_id=3,
            )
        )  # fmt: skip
        sink.emit(make_event("window", t1, index=1, score=6.5, decision="anomalous"))
        status = _wait_status(sub, lambda s: s["anomaly"], "the alert's status")
        shown = _states(sub)
        assert all(not s["errors"] for s in shown.values()), shown
        assert shown["anomaly"]["state"] == "ON" and float(shown["score"]["state"]) == 6.5
        assert float(shown["threshold"]["state"]) == 2.0
        assert shown["state"]["state"] == "running"
        assert shown["last_alert"]["attributes"]["id"] == "alert-x-w00000001"
        assert shown["last_alert"]["attributes"]["clip"] == "alert-x-w00000001.flac"
        assert shown["anomaly"]["attributes"]["bank_size"] is None  # the rest as attributes
        assert status["last_window_time"] == status["last_alert"]["time"]

        # a dead microphone: "No signal" is on, and the score is unknown, not stale
        sink.emit(make_event("alert", time.time(), kind="no_signal", window_index=2))
        sink.emit(make_event("window", time.time(), index=2, decision="no-signal"))
        _wait_status(sub, lambda s: s["no_signal"], "the no-signal status")
        shown = _states(sub)
        assert all(not s["errors"] for s in shown.values()), shown
        assert shown["no_signal"]["state"] == "ON" and not shown["score"]["available"]
    finally:
        sink.close()


def test_the_schema_check_catches_what_ha_rejects() -> None:
    """The checks of ha_schema fail on edgeasd 0.1.0's score sensor and on bad keys."""
    old_score = {
        "name": "Anomaly score",
        "unique_id": "u",
        "state_topic": f"{BASE}/status",
        "availability_topic": f"{BASE}/availability",
        "state_class": "measurement",
        "value_template": "{{ value_json.last_score }}",
        "device": {"identifiers": ["u"]},
    }
    assert validate("sensor", old_score) == []
    msgs = {f"{BASE}/status": json.dumps({"last_score": None}), f"{BASE}/availability": "online"}
    assert "non-numeric value 'None'" in simulate("sensor", old_score, msgs)["errors"][0]
    assert validate("sensor", {**old_score, "device_class": "problem"})
    assert validate("sensor", {**old_score, "expire_after": -1})
    assert validate("binary_sensor", {**old_score, "state_class": "measurement"})
    assert validate("sensor", {**old_score, "device": {"name": "no id"}})
    assert validate("sensor", {**old_score, "availability": [{"topic": "a/#/b"}]})


def test_status_and_event_times_share_one_format(tmp_path) -> None:
    sink = MqttSink(MqttConfig(enabled=True, port=1), tmp_path / "q.sqlite", _Board())
    try:
        status_time = sink.status_message()["time"]
    finally:
        sink.close(timeout=0.1)
    event_time = make_event("alert", time.time())["time"]
    for stamp in (status_time, event_time):  # 2026-12-07T12:00:00.123+00:00
        assert stamp[-6] in "+-" and stamp[-3] == ":" and stamp[19] == ".", stamp


@given(
    st.tuples(st.text(min_size=1), st.text(min_size=1)),
    st.tuples(st.text(min_size=1), st.text(min_size=1)),
)
def test_node_ids_are_injective_and_in_has_alphabet(a, b) -> None:
    ida, idb = ha_discovery.node_id(*a), ha_discovery.node_id(*b)
    assert set(ida) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert (ida == idb) == (a == b)


def test_colliding_names_of_the_old_ids_are_two_devices() -> None:
    names = ["pump.4", "pump_4", "pump-4", "pump 4"]
    assert len({ha_discovery.legacy_node_id("plant", n) for n in names}) < len(names)
    assert len({ha_discovery.node_id("plant", n) for n in names}) == len(names)
    assert ha_discovery.node_id("plant", "pump1") == "edgeasd_plant_pump1"  # plain names kept
    assert ha_discovery.node_id("a_", "b") != ha_discovery.node_id("a", "_b")
