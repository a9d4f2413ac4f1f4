"""The fleet observers behind ``EventSinks.from_config``: carried over a reload when their
section is unchanged, rebuilt when it changed, refused at start but only logged on a
reload, and an observer that fails never stops the logs."""

from __future__ import annotations

import logging

import pytest

from edgeasd.agent.alerts.detector import make_event
from edgeasd.agent.alerts.sinks import EventSinks
from edgeasd.config import config_from_dict
from edgeasd.config.paths import resolve_paths
from edgeasd.errors import ConfigError
from edgeasd.fleet.metrics import Metrics


def _config(tmp_path, **sections):
    data = {
        "paths": {
            "state_dir": str(tmp_path / "state"),
            "runtime_dir": str(tmp_path / "run"),
            "log_dir": str(tmp_path / "log"),
        },
        **sections,
    }
    return config_from_dict(data)


def test_reload_keeps_unchanged_observers_and_rebuilds_changed_ones(tmp_path) -> None:
    cfg = _config(tmp_path)
    paths = resolve_paths(cfg)
    first = EventSinks.from_config(cfg, paths)
    (metrics,) = first.observers
    assert isinstance(metrics, Metrics) and metrics.textfile == paths.runtime_dir / "edgeasd.prom"
    first.emit(make_event("alert", 1.0, score=5.0))
    same = EventSinks.from_config(cfg, paths, previous=first)
    first.close()
    assert same.observers == [metrics] and metrics._thread.is_alive()  # not closed
    changed = cfg.replace(metrics={"textfile_interval_seconds": 30.0})
    third = EventSinks.from_config(changed, paths, previous=same)
    same.close()
    assert third.observers[0] is not metrics and not metrics._thread.is_alive()
    off = EventSinks.from_config(cfg.replace(metrics={"enabled": False}), paths, previous=third)
    third.close()
    assert off.observers == []
    off.close()


def test_an_observer_failure_refuses_the_start_but_not_a_reload(tmp_path, caplog) -> None:
    pytest.importorskip("paho.mqtt.client")
    bad = _config(
        tmp_path,
        mqtt={"enabled": True, "username": "u", "password_file": str(tmp_path / "missing")},
    )
    paths = resolve_paths(bad)
    with pytest.raises(ConfigError, match="cannot read the MQTT password"):
        EventSinks.from_config(bad, paths)
    good = EventSinks.from_config(_config(tmp_path), paths)
    with caplog.at_level(logging.ERROR, logger="edgeasd.fleet.observers"):
        reloaded = EventSinks.from_config(bad, paths, previous=good)
    good.close()
    assert "reload: MQTT disabled" in caplog.text
    assert [type(o).__name__ for o in reloaded.observers] == ["Metrics"]
    reloaded.close()


class _Broken:
    settings = None

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def emit(self, event: dict) -> None:
        self.calls += 1
        raise OSError("disk full")

    def close(self) -> None:
        self.closed = True


def test_a_failing_observer_is_logged_once_and_the_logs_go_on(tmp_path, caplog) -> None:
    broken = _Broken()
    sinks = EventSinks(tmp_path / "a.jsonl", tmp_path / "s.jsonl", observers=[broken])
    with caplog.at_level(logging.ERROR):
        for i in range(3):
            sinks.emit(make_event("alert", float(i), score=5.0))
    sinks.close()
    assert broken.calls == 3 and broken.closed
    assert caplog.text.count("_Broken failed to take an event") == 1
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 3
