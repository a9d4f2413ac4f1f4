"""The stage protocols of :mod:`edgeasd.interfaces`: every concrete stage satisfies its
boundary, and does what the protocol's contract says (shapes and dtypes), checked on real
models, a real bank, real log files and a real MQTT sink."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from support.onnx_models import machine_sound, make_test_model

from edgeasd import interfaces
from edgeasd.agent.alerts.detector import Detector, make_event
from edgeasd.agent.alerts.event_log import JsonlLog, read_events
from edgeasd.agent.alerts.no_signal import SignalWatch
from edgeasd.agent.alerts.sinks import EventSinks
from edgeasd.agent.enrollment.bank_lifecycle import new_bank
from edgeasd.audio.sources import FileSource
from edgeasd.config import Config
from edgeasd.config.fleet import MetricsConfig, MqttConfig
from edgeasd.embedding.ensemble import EnsembleEmbedder
from edgeasd.embedding.onnx import Embedder
from edgeasd.fleet.metrics import Metrics


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    d = tmp_path_factory.mktemp("interfaces")
    a = make_test_model(d / "a.onnx", window_seconds=0.5)
    b = make_test_model(d / "b.onnx", window_seconds=0.5, dim=8, frame=128)
    return [Embedder(a), EnsembleEmbedder([a, b])]


def test_embedders_satisfy_the_embedder_protocol(embedders):
    x = np.stack([machine_sound(0.5, seed=s) for s in range(3)]).astype(np.float32)
    for emb in embedders:
        assert isinstance(emb, interfaces.Embedder), type(emb).__name__
        y = emb.embed(x)
        assert y.shape == (3, emb.info.dim) and y.dtype == np.float32
        assert emb.window_samples == emb.info.window_samples == x.shape[1]


def test_bank_satisfies_the_scorer_protocol(embedders):
    emb = embedders[0]
    bank = new_bank(Config().scoring, emb.info)
    assert isinstance(bank, interfaces.Scorer)
    refs = emb.embed(np.stack([machine_sound(0.5, seed=s) for s in range(6)]))
    bank.enroll(refs, group=[0, 0, 1, 1, 2, 2])
    q = emb.embed(np.stack([machine_sound(0.5, seed=9, anomalous=True)]))
    scores, nearest = bank.score(q, return_nearest=True)
    assert scores.shape == (1,) and nearest.shape == (1,)
    assert int(nearest[0]) in set(bank.ids_.tolist())


def test_detector_satisfies_the_detector_protocol():
    det = Detector(threshold=1.0, k=1, n=1)
    assert isinstance(det, interfaces.Detector)
    events = det.update(2.0, 10.0, 0)
    assert [e.event for e in events] == ["alert"] and det.alerting
    det.reset()
    assert not det.alerting
    # the signal watch turns a different input into events: it is not a score detector
    assert not isinstance(SignalWatch(alert_seconds=60.0, window_seconds=1.0), interfaces.Detector)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sinks_satisfy_the_sink_protocol(tmp_path):
    from edgeasd.fleet.mqtt import MqttSink

    mqtt = MqttSink(
        MqttConfig(enabled=True, host="127.0.0.1", port=_closed_port()), tmp_path / "q.sqlite"
    )
    metrics = Metrics(MetricsConfig(), tmp_path / "edgeasd.prom", start=False)
    log = JsonlLog(tmp_path / "extra.jsonl")
    sinks = EventSinks(tmp_path / "alerts.jsonl", tmp_path / "scores.jsonl", observers=[log])
    alert = make_event("enrolled", 1.0, ids=[1])
    try:
        for sink in (mqtt, metrics, log, sinks):
            assert isinstance(sink, interfaces.Sink), type(sink).__name__
        sinks.emit(alert)
        for sink in (mqtt, metrics):
            sink.emit(alert)
    finally:
        for sink in (mqtt, metrics, sinks):
            sink.close()
    # JsonlLog.emit writes the line (through the EventSinks observer list here)
    assert [e["event"] for e in read_events(tmp_path / "extra.jsonl")] == ["enrolled"]
    assert [e["event"] for e in read_events(tmp_path / "alerts.jsonl")] == ["enrolled"]
    assert not isinstance(Detector(threshold=1.0), interfaces.Sink)


def test_sources_satisfy_the_source_protocol(tmp_path):
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, machine_sound(0.5), 16000)
    with FileSource(path, 16000) as src:
        assert isinstance(src, interfaces.Source)
        assert sum(b.samples.size for b in src.blocks()) == 8000
