"""``edgeasd run`` as a subprocess publishing to a real Mosquitto: alerts reach a
subscriber, the last will follows a SIGKILL, and a broker killed during an anomaly and
restarted still gets every alert, in order (duplicates dropped by ``seq``)."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
from e2e.harness import feed_signal, make_setup, write_normal
from prometheus_client.parser import text_string_to_metric_families

from edgeasd.audio.io import write_audio

pytest.importorskip("paho.mqtt.client")

SITE, MACHINE = "plant", "m1"
BASE = f"edgeasd/{SITE}/{MACHINE}"
# 1 s normal then 1 s anomalous, looped in real time (1 s windows): an alert every 2 s
CYCLE = [(1.0, False), (1.0, True)]


def _agent(tmp_path, port: int, feed=None):
    if feed is None:
        feed = tmp_path / "feed.wav"
        write_audio(feed, feed_signal(CYCLE * 4, seed=300), 16000, subtype="FLOAT")
    setup = make_setup(
        tmp_path / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        mqtt={
            "enabled": True,
            "host": "127.0.0.1",
            "port": port,
            "site": SITE,
            "machine": MACHINE,
            "keepalive_seconds": 5,
            "heartbeat_seconds": 1.0,
        },
        metrics={"textfile_interval_seconds": 1.0},
    )
    normal = [write_normal(tmp_path / f"n{i}.wav", 3, seed=i + 1) for i in range(2)]
    setup.cli("enroll", *map(str, normal), check=True)
    return setup


def _alerts_logged(setup) -> list[dict]:
    return [e for e in setup.events() if e["event"] == "alert"]


def _unique(events: list[dict]) -> list[dict]:
    """Events deduplicated by ``seq`` (at-least-once delivery), in arrival order."""
    seen, out = set(), []
    for e in events:
        if e["seq"] not in seen:
            seen.add(e["seq"])
            out.append(e)
    return out


def test_daemon_publishes_alerts_and_the_last_will_on_sigkill(tmp_path, broker, subscribe) -> None:
    b = broker()
    sub = subscribe(b.port, ["edgeasd/#", "homeassistant/#"])
    setup = _agent(tmp_path, b.port)
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        sub.wait_for(lambda m: any(t == f"{BASE}/event/alert" for t, _, _ in m), what="an alert")
        sub.wait_for(lambda m: any(t == f"{BASE}/event/recovered" for t, _, _ in m))
        prom = setup.run_dir / "edgeasd.prom"
        setup.wait_for(lambda s: prom.exists(), what="the metrics text file")
        time.sleep(1.5)  # one more rewrite: the alert is counted
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        msgs = sub.wait_for(
            lambda m: (f"{BASE}/availability", b"offline", False) in m, what="the last will"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
    alert = sub.payloads("/event/alert")[0]
    logged = _alerts_logged(setup)[0]
    assert {k: alert[k] for k in logged} == logged  # the event of alerts.jsonl, plus seq
    assert isinstance(alert["seq"], int)
    assert (f"{BASE}/availability", b"online", False) in msgs
    status = sub.payloads(f"{BASE}/status")[-1]
    assert status["state"] == "running" and status["bank"] == {"source": 6}
    assert status["threshold"] > 0 and status["last_score"] is not None
    ha = [t for t, _, _ in msgs if t.startswith("homeassistant/")]
    assert len(ha) == 6  # anomaly, no signal, score, threshold, state, last alert
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    samples = {
        (s.name, tuple(s.labels.values())): s.value for f in families.values() for s in f.samples
    }
    assert samples[("edgeasd_windows_scored_total", ())] > 0
    assert samples[("edgeasd_events_total", ("alert",))] >= 1
    assert samples[("edgeasd_mqtt_connected", ())] == 1
    assert ("edgeasd_mqtt_queue_depth", ()) in samples
    assert samples[("edgeasd_bank_references", ("source",))] == 6
    assert samples[("edgeasd_embed_seconds_count", ())] > 0


def test_broker_outage_during_anomaly_loses_no_alert(tmp_path, broker, subscribe) -> None:
    b = broker(persist=True)  # the subscriber's session survives the broker's SIGKILL
    sub = subscribe(b.port, [f"{BASE}/event/alert"], persistent=True)
    setup = _agent(tmp_path, b.port)
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        sub.wait_for(lambda m: len(m) >= 1, what="the first alert")
        b.kill()
        outage_start = len(_alerts_logged(setup))
        setup.wait_for(
            lambda s: len(_alerts_logged(setup)) >= outage_start + 2,
            what="two alerts during the outage",
        )
        b.start()
        setup.wait_for(
            lambda s: len(_alerts_logged(setup)) >= outage_start + 3,
            what="an alert after the outage",
        )
        logged = _alerts_logged(setup)
        sub.wait_for(
            lambda m: len(_unique([json.loads(p) for _, p, _ in m])) >= len(logged),
            what=f"{len(logged)} alerts",
        )
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    received = _unique(sub.payloads("/event/alert"))
    logged = _alerts_logged(setup)
    # every alert, in order, once (the daemon may have raised more after the last wait)
    assert [e["time"] for e in received] == [e["time"] for e in logged][: len(received)]
    assert len(received) >= outage_start + 3
    seqs = [e["seq"] for e in received]
    assert seqs == sorted(seqs)
    assert "connection to" in setup.log() and "lost" in setup.log()


def test_alert_status_fields_stop_and_restart_during_a_fault(tmp_path, broker, subscribe) -> None:
    """A continuing fault: the alert's payload names its clip, reference, level and
    clipping; the status published with it carries its score; a clean stop leaves
    ``stopped``; a restart neither shows a recovery nor raises the alert again."""
    b = broker()
    sub = subscribe(b.port, [f"{BASE}/status", f"{BASE}/event/#"])
    feed = tmp_path / "fault.wav"
    write_audio(feed, feed_signal([(3.0, True)], seed=301), 16000, subtype="FLOAT")
    setup = _agent(tmp_path, b.port, feed)

    def statuses() -> list[dict]:
        return sub.payloads(f"{BASE}/status")

    proc = setup.start()
    try:
        setup.wait_ready(proc)
        sub.wait_for(lambda m: any(t == f"{BASE}/event/alert" for t, _, _ in m), what="alert")
        alert = sub.payloads("/event/alert")[0]
        after = len(statuses())
        sub.wait_for(lambda m: len(statuses()) >= after + 2, what="two heartbeats")
        assert setup.stop(proc) == 0
        sub.wait_for(lambda m: statuses()[-1]["state"] == "stopped", what="the stopped status")
        stopped = len(statuses())
        proc = setup.start()
        setup.wait_ready(proc)
        sub.wait_for(
            lambda m: sum(s["state"] == "running" for s in statuses()[stopped:]) >= 4,
            what="the restarted agent's heartbeats",
        )
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = _alerts_logged(setup)
    assert len(logged) == 1, logged  # the same fault, one alert across the restart
    assert len(_unique(sub.payloads("/event/alert"))) == 1
    assert not sub.payloads("/event/recovered")
    for key in ("id", "clip", "nearest_id", "nearest_domain", "clipped", "level_dbfs"):
        assert key in alert, key
    assert alert["id"] == alert["alert_id"]  # one id, the one `edgeasd feedback` takes
    assert re.fullmatch(r"\d{8}-\d{6}-\d+", alert["id"]), alert["id"]
    assert alert["clip"].endswith(".flac")
    assert (setup.logs / "alert-audio" / alert["clip"]).is_file()
    seen = statuses()
    first = next(i for i, s in enumerate(seen) if s["anomaly"])
    assert seen[first]["last_score"] == pytest.approx(
        alert["score"], abs=1e-5
    )  # the alerted window, not the one before
    assert seen[first]["last_alert"]["id"] == alert["id"]
    assert all(s["anomaly"] for s in seen[first:]), [s["anomaly"] for s in seen]
    assert seen[-1]["state"] == "stopped"


def test_bank_changes_reach_mqtt_direct_and_live(tmp_path, broker, subscribe) -> None:
    """A direct enrollment (daemon stopped) is queued on disk and published once the daemon
    runs; a removal through the running daemon is published as it happens (issue 17)."""
    b = broker()
    sub = subscribe(b.port, ["edgeasd/#"])
    setup = _agent(tmp_path, b.port)  # enrolls directly: an `enrolled` event is queued
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        sub.wait_for(lambda m: any(t == f"{BASE}/event/enrolled" for t, _, _ in m))
        (enrolled,) = sub.payloads("/event/enrolled")
        assert enrolled["via"] == "direct" and enrolled["bank_size"] == 6
        setup.cli("bank", "remove", "1", check=True)
        sub.wait_for(lambda m: any(t == f"{BASE}/event/removed" for t, _, _ in m))
        (removed,) = sub.payloads("/event/removed")
        assert removed["via"] == "daemon" and removed["removed"] == [1]
        assert removed["bank_size"] == 5
    finally:
        if proc.poll() is None:
            proc.kill()
