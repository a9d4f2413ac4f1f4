"""Prometheus metrics: parse with prometheus_client's parser, the text file is replaced
atomically, ``/metrics`` on loopback, and a non-loopback bind is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeasd.agent.alerts.detector import make_event
from edgeasd.config import config_from_dict
from edgeasd.config.fleet import MetricsConfig
from edgeasd.errors import ConfigError
from edgeasd.fleet.metrics import Metrics

from .conftest import free_port


def _status() -> dict:
    return {
        "state": "running",
        "threshold": 2.5,
        "bank": {"source": 7, "target": 3},
        "source": {"frames": 16000, "overflows": 4},
        "model": {"name": "test-model", "id": "abc"},
    }


def _feed(m: Metrics) -> None:
    m.emit(make_event("enrolled", 1.0, ids=[1, 2]))
    for i, (score, decision) in enumerate([(1.0, "normal"), (3.0, "anomalous")]):
        m.emit(
            make_event(
                "window", 2.0 + i, score=score, decision=decision, embed_ms=12.0, score_ms=0.7
            )
        )
    m.emit(make_event("window", 4.0, decision="signal"))
    m.emit(make_event("alert", 3.0, score=3.0))
    m.emit(make_event("signal", 4.0, status="silence", previous="ok"))


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_parse_and_have_the_values_fed(tmp_path) -> None:
    m = Metrics(MetricsConfig(), tmp_path / "edgeasd.prom", _status, start=False)
    _feed(m)
    m.write()
    s = _samples((tmp_path / "edgeasd.prom").read_text())
    assert s[("edgeasd_windows_scored_total", ())] == 2
    assert s[("edgeasd_windows_total", (("decision", "anomalous"),))] == 1
    assert s[("edgeasd_windows_total", (("decision", "signal"),))] == 1
    assert s[("edgeasd_last_score", ())] == 3.0
    assert s[("edgeasd_threshold", ())] == 2.5
    assert s[("edgeasd_events_total", (("kind", "alert"),))] == 1
    assert s[("edgeasd_events_total", (("kind", "recovered"),))] == 0
    assert s[("edgeasd_anomaly", ())] == 1
    assert s[("edgeasd_enrollments_total", ())] == 1
    assert s[("edgeasd_signal_state", (("status", "silence"),))] == 1
    assert s[("edgeasd_signal_state", (("status", "ok"),))] == 0
    assert s[("edgeasd_audio_overflows_total", ())] == 4
    assert s[("edgeasd_bank_references", (("domain", "target"),))] == 3
    assert s[("edgeasd_state", (("state", "running"),))] == 1
    assert s[("edgeasd_embed_seconds_count", ())] == 2
    assert s[("edgeasd_embed_seconds_bucket", (("le", "0.01"),))] == 0
    assert s[("edgeasd_embed_seconds_bucket", (("le", "0.025"),))] == 2
    assert s[("edgeasd_score_seconds_sum", ())] == pytest.approx(0.0014)
    build = [k for k in s if k[0] == "edgeasd_build_info"]
    assert len(build) == 1 and ("model", "test-model") in build[0][1]
    assert not any(k[0].startswith("edgeasd_mqtt") for k in s)  # no MQTT sink


def test_textfile_is_replaced_atomically(tmp_path) -> None:
    """A reader polling the file while it is rewritten never sees it partial or missing."""
    path = tmp_path / "edgeasd.prom"
    m = Metrics(MetricsConfig(), path, _status, start=False)
    m.write()
    stop = threading.Event()
    seen: dict[str, int] = {}  # distinct contents read -> times
    errors: list[OSError] = []

    def read() -> None:
        while not stop.is_set():
            try:
                text = path.read_text()
            except OSError as exc:  # missing between unlink and write: not atomic
                errors.append(exc)
                continue
            seen[text] = seen.get(text, 0) + 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(100):
            m.emit(make_event("window", float(i), score=float(i), decision="normal"))
            m.write()
    finally:
        stop.set()
        reader.join()
    assert not errors and len(seen) > 3
    for text in seen:
        assert text.endswith("\n") and "edgeasd_build_info" in text
        _samples(text)  # parses
    assert not [p for p in os.listdir(tmp_path) if p != "edgeasd.prom"]  # no temp left


def test_http_endpoint_on_loopback_and_writer_thread(tmp_path) -> None:
    port = free_port()
    cfg = MetricsConfig(http_port=port, textfile_interval_seconds=1.0)
    m = Metrics(cfg, tmp_path / "m" / "edgeasd.prom", _status)
    try:
        _feed(m)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert _samples(text)[("edgeasd_events_total", (("kind", "alert"),))] == 1
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            Metrics(cfg, tmp_path / "other.prom", _status)  # the port is taken
    finally:
        m.close()
    # the writer made the text file, and wrote the final values at close
    assert _samples((tmp_path / "m" / "edgeasd.prom").read_text())[("edgeasd_anomaly", ())] == 1
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.10", "::", "metrics.example.com"])
def test_non_loopback_bind_is_refused_unless_allowed(bind) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.http_bind") as exc:
        config_from_dict({"metrics": {"http_port": 9662, "http_bind": bind}})
    assert "allow_remote" in exc.value.help
    cfg = config_from_dict(
        {"metrics": {"http_port": 9662, "http_bind": bind, "allow_remote": True}}
    )
    assert cfg.metrics.http_bind == bind
    # without a port nothing listens: the bind is not checked
    config_from_dict({"metrics": {"http_bind": bind}})


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_binds_are_accepted(bind) -> None:
    assert config_from_dict({"metrics": {"http_port": 9662, "http_bind": bind}}).metrics.http_port


def test_counters_start_at_zero_process_metrics_and_no_created(tmp_path) -> None:
    """Before any event every counter has a sample (an ``increase()`` alert has data), the
    process's memory and CPU are there, the last window's time follows the windows, and
    the file has no ``_created`` series; promtool accepts it."""
    from types import SimpleNamespace

    from edgeasd.fleet.mqtt_queue import DiskQueue

    queue = DiskQueue(tmp_path / "q.sqlite", 2**20)
    mqtt = SimpleNamespace(queue=queue, connected=False)
    path = tmp_path / "edgeasd.prom"
    m = Metrics(MetricsConfig(), path, lambda: {"state": "running"}, mqtt, start=False)
    m.write()
    text = path.read_text()
    s = _samples(text)
    for kind in ("alert", "reminder", "recovered", "signal", "enrolled"):
        assert s[("edgeasd_mqtt_dropped_total", (("kind", kind),))] == 0
        assert s[("edgeasd_events_total", (("kind", kind),))] == 0
    for decision in ("normal", "anomalous", "no-signal"):
        assert s[("edgeasd_windows_total", (("decision", decision),))] == 0
    assert s[("edgeasd_audio_overflows_total", ())] == 0
    assert s[("edgeasd_last_window_timestamp_seconds", ())] == 0
    assert s[("process_resident_memory_bytes", ())] > 10 * 2**20
    assert ("process_cpu_seconds_total", ()) in s
    assert "_created" not in text
    m.emit(make_event("window", 1.7e9 + 0.25, score=1.0, decision="normal"))
    m.write()
    assert _samples(path.read_text())[("edgeasd_last_window_timestamp_seconds", ())] == 1.7e9 + 0.25
    queue.close()
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=path.read_bytes(), capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
