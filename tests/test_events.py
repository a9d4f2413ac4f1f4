"""The record types of :mod:`edgeasd.events` are true: every record the real pipeline emits
has the declared fields of its kind, with the declared types, and nothing undeclared."""

from __future__ import annotations

import json
import types
import typing

import numpy as np
import pytest
from support.onnx_models import machine_sound, make_test_model

from edgeasd import events
from edgeasd.agent.alerts.detector import Detector
from edgeasd.agent.alerts.event_log import encode_event
from edgeasd.audio.io import write_audio
from edgeasd.config import Config
from edgeasd.errors import InputError

RATE = 16000


def _matches(value, hint) -> bool:
    """Whether a JSON-ready ``value`` has the annotated type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _problems(record: dict) -> list[str]:
    kind = record.get("event")
    cls = events.KINDS.get(kind)
    if cls is None:
        return [f"undeclared kind {kind!r}"]
    hints = typing.get_type_hints(cls)
    out = [f"{kind}: missing {k}" for k in cls.__required_keys__ if k not in record]
    for key, value in record.items():
        if key not in hints:
            out.append(f"{kind}: undeclared field {key}={value!r}")
        elif not _matches(value, hints[key]):
            out.append(f"{kind}: {key}={value!r} is not {hints[key]}")
    return out


@pytest.fixture(scope="module")
def pipeline_records(tmp_path_factory):
    """Every record of a real daemon run on a file: enrollment of the first windows, scored
    normal and anomalous sound, then a silence long enough for a no-signal alert and its
    recovery."""
    from edgeasd.agent.runloop.daemon import Daemon

    d = tmp_path_factory.mktemp("events")
    model = make_test_model(d / "m.onnx", window_seconds=1.0)
    parts = [(12, False), (4, False), (6, True), (4, None), (4, False)]
    audio = np.concatenate(
        [
            np.zeros(sec * RATE, np.float32)
            if anom is None
            else machine_sound(sec, RATE, anomalous=anom, seed=i)
            for i, (sec, anom) in enumerate(parts)
        ]
    )
    write_audio(d / "feed.wav", audio, RATE, subtype="FLOAT")
    config = Config().replace(
        model={"path": str(model)},
        source={"kind": "file", "path": str(d / "feed.wav"), "realtime": False},
        paths={"state_dir": str(d / "s"), "runtime_dir": str(d / "r"), "log_dir": str(d / "l")},
        scoring={"min_references": 8},
        enrollment={"keep_audio": False, "group_seconds": 3.0},
        quality={"no_signal_alert_seconds": 2.0},
    )
    records: list[dict] = []
    Daemon(config, initial_enroll=[(12, "source")], on_record=records.append).run()
    return records


def test_every_pipeline_record_has_its_declared_fields(pipeline_records):
    kinds = {r["event"] for r in pipeline_records}
    assert {"window", "enrolled", "signal", "alert", "recovered"} <= kinds, kinds
    decisions = {r["decision"] for r in pipeline_records if r["event"] == "window"}
    assert {"enrolling", "normal", "no-signal"} <= decisions, decisions
    problems = [p for r in pipeline_records for p in _problems(r)]
    assert not problems, problems[:10]


def test_detector_episodes_have_their_declared_fields():
    det = Detector(
        threshold=1.0,
        k=1,
        n=1,
        threshold_source="config",
        reminder_seconds=5.0,
        threshold_facts={
            "threshold_rule": "fixed",
            "predicted_false_alarm_rate": None,
            "predicted_false_alarms_per_day": None,
        },
    )
    out = det.update(2.0, 0.0, 0, {"clipped": True, "clip_fraction": 0.02})
    out += det.update(3.0, 10.0, 1) + det.update(0.5, 11.0, 2)
    records = [e.to_dict() for e in out]
    assert [r["event"] for r in records] == ["alert", "reminder", "recovered"]
    assert [p for r in records for p in _problems(r)] == []


def test_an_undeclared_field_is_caught():
    """The check above can fail: a field nobody declared, a wrong type, a missing field."""
    good = {"time": "t", "event": "signal", "status": "silence", "previous": None}
    assert _problems(good) == []
    assert _problems({**good, "colour": "red"}) == ["signal: undeclared field colour='red'"]
    assert _problems({**good, "window_index": "3"})[0].startswith("signal: window_index='3'")
    assert _problems({"time": "t", "event": "signal"}) == ["signal: missing status"]


def test_encode_is_the_sinks_serialization():
    record = {"time": "t", "event": "window", "score": float("nan"), "index": np.int64(3)}
    line = encode_event(record)
    assert line == events.encode(record) and line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"time": "t", "event": "window", "score": None, "index": 3}
    with pytest.raises(InputError, match="must be a dict"):
        events.encode(["not", "a", "record"])


def test_bank_change_events_have_their_declared_fields(tmp_path):
    """``enrolled`` (with the guard's report), ``feedback``, ``removed`` and ``restored`` as
    the daemon and the direct commands build them."""
    from edgeasd.agent.alerts import decision
    from edgeasd.agent.alerts.bank_events import bank_event
    from edgeasd.agent.enrollment import bank_edits, guard
    from edgeasd.agent.enrollment.bank_lifecycle import bank_summary
    from edgeasd.agent.enrollment.batch import Batch
    from edgeasd.agent.enrollment.enroll import commit, enrollment_result
    from edgeasd.config import Config
    from edgeasd.scoring import ReferenceBank, save_bank

    rng = np.random.default_rng(0)
    config = Config().replace(scoring={"min_references": 4})
    bank, path = ReferenceBank(8), tmp_path / "bank"
    bank.enroll(rng.normal(size=(12, 8)), group=[f"g{i // 3}" for i in range(12)])
    save_bank(bank, path)
    state = decision.bank_state(bank, config, 10.0)
    batch = Batch(
        rng.normal(size=(2, 8)).astype(np.float32), "source", "feedback-x-000", [], RATE, "a"
    )
    report = guard.check(bank, state.threshold, [batch], accept_anomalous=True)
    ids = commit(bank, path, [batch])
    state = decision.bank_state(bank, config, 10.0)
    enrolled = {**enrollment_result(bank, [batch], ids, state), "guard": report}
    feedback = {**enrolled, "alert_id": "20261207-130501-42", "condition": "source", "windows": 2}
    after = {"bank_size": len(bank), "domains": bank_summary(bank), **state.as_dict()}
    removed = {**bank_edits.remove_references(bank, path, ids[:1], None), **state.as_dict()}
    restored = {**bank_edits.restore_generation(path, 1), **after}
    records = [
        bank_event("enrolled", enrolled, "daemon"),
        bank_event("feedback", feedback, "direct"),
        bank_event("removed", removed, "daemon"),
        bank_event("restored", restored, "direct"),
    ]
    assert [p for r in records for p in _problems(r)] == []
    assert _problems({**records[2], "colour": 1}) == ["removed: undeclared field colour=1"]
