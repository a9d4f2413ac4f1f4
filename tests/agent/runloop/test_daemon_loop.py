"""The run loop in-process on file sources: learning, scoring, signal events, reload,
device-loss retries, status snapshot."""

from __future__ import annotations

import json

import pytest

from edgeasd.agent.runloop import stages as pipeline
from edgeasd.agent.runloop.daemon import Daemon
from edgeasd.config import load_config
from edgeasd.config.paths import resolve_paths
from edgeasd.errors import DeviceError, ModelError
from edgeasd.scoring import load_bank

from ..conftest import wav


def _run(config_path, **kwargs) -> tuple[Daemon, list[dict]]:
    records: list[dict] = []
    d = Daemon(load_config(config_path), on_record=records.append, handle_signals=False, **kwargs)
    assert d.run() == 0
    return d, records


def test_learning_enrollment_then_scoring_and_signal_changes(tmp_path, make_config) -> None:
    feed = wav(
        tmp_path / "f.wav",
        [(6, "normal"), (2, "silence"), (2, "normal"), (3, "anomalous"), (2, "normal")],
    )
    cfg = make_config(feed)
    d, records = _run(cfg, initial_enroll=[(2, "source"), (2, "target")])
    windows = [r for r in records if r["event"] == "window"]
    assert [w["decision"] for w in windows] == (
        ["enrolling"] * 4
        + ["normal"] * 2
        + ["no-signal"] * 2
        + ["normal"] * 2
        + ["anomalous"] * 3
        + ["normal"] * 2
    )
    events = [r for r in records if r["event"] != "window"]
    kinds = [(e["event"], e.get("status")) for e in events]
    assert kinds == [
        ("enrolled", None),
        ("enrolled", None),
        ("signal", "dead"),
        ("signal", "ok"),
        ("alert", None),
        ("recovered", None),
    ]
    snap = json.loads((tmp_path / "run" / "status.json").read_text())
    assert snap["state"] == "stopped" and snap["windows"] == 15
    assert snap["windows_scored"] == 9 and snap["alerts"] == 1
    assert snap["bank"] == {"source": 2, "target": 2} and snap["learning_needed"] == 0
    assert snap["source"]["frames"] == 15 * 16000
    bank = load_bank(tmp_path / "state" / "bank")
    assert len(bank) == 4 and sorted(set(bank.groups_)) == sorted(snap_groups(records))
    assert bank.meta["model_id"] == d.info.id
    logged = [json.loads(x) for x in (tmp_path / "log" / "scores.jsonl").read_text().splitlines()]
    assert [x["index"] for x in logged] == list(range(15))


def snap_groups(records: list[dict]) -> list[str]:
    return [g for r in records if r["event"] == "enrolled" for g in r["groups"]]


def test_learning_state_without_enrollment_never_alerts(tmp_path, make_config) -> None:
    feed = wav(tmp_path / "f.wav", [(2, "normal"), (2, "anomalous")])
    _, records = _run(make_config(feed))
    windows = [r for r in records if r["event"] == "window"]
    assert [w["decision"] for w in windows] == ["learning"] * 4
    assert all(w["needed"] == 4 for w in windows)
    assert not [r for r in records if r["event"] == "alert"]


def test_sighup_reload_applies_new_threshold(tmp_path, make_config) -> None:
    feed = wav(tmp_path / "f.wav", [(8, "normal")])
    cfg = make_config(feed)
    records: list[dict] = []
    d = Daemon(load_config(cfg), initial_enroll=[(2, "a"), (2, "b")], handle_signals=False)

    def on_record(r: dict) -> None:
        records.append(r)
        if r["event"] == "window" and r["index"] == 5:
            make_config(feed, threshold={"rule": "fixed", "value": 0.0})
            d._reload.set()  # what the SIGHUP handler does

    d.on_record = on_record
    d.run()
    decisions = [r["decision"] for r in records if r["event"] == "window"]
    assert decisions[4:6] == ["normal", "normal"] and decisions[6:] == ["anomalous"] * 2
    assert d.detector.threshold_source.startswith("config: threshold.rule fixed")


def test_bad_reload_keeps_running_config(tmp_path, make_config, caplog) -> None:
    feed = wav(tmp_path / "f.wav", [(6, "normal")])
    cfg = make_config(feed)
    d = Daemon(load_config(cfg), initial_enroll=[(2, "a"), (2, "b")], handle_signals=False)

    def on_record(r: dict) -> None:
        if r["event"] == "window" and r["index"] == 4:
            cfg.write_text("detector: {k: 5, n: 1}\n")
            d._reload.set()

    d.on_record = on_record
    d.run()
    assert "reload failed" in caplog.text and "detector.k" in caplog.text
    assert d.config.detector.k == 1


class _DeadSource:
    opened = 0

    def __init__(self, *args, **kwargs) -> None:
        type(self).opened += 1

    def blocks(self):
        raise DeviceError("no audio from 'usb mic' for 5.0 s", help="check the cable")
        yield  # pragma: no cover

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def test_device_loss_bounded_retries_then_clear_error(tmp_path, make_config, monkeypatch):
    monkeypatch.setattr(pipeline, "make_source", _DeadSource)
    cfg = make_config(None, device={"retries": 2, "retry_delay_seconds": 0.0})
    with pytest.raises(
        DeviceError, match="capture failed, still after 2 retries: no audio from 'usb mic'"
    ):
        Daemon(load_config(cfg), handle_signals=False).run()
    assert _DeadSource.opened == 3
    snap = json.loads((tmp_path / "run" / "status.json").read_text())
    assert snap["state"] == "stopped"


def test_bank_of_another_model_is_refused(tmp_path, make_config, model) -> None:
    from support.onnx_models import make_test_model

    feed = wav(tmp_path / "f.wav", [(4, "normal")])
    _run(make_config(feed), initial_enroll=[(2, "a")])
    other = make_test_model(tmp_path / "other.onnx", window_seconds=1.0, dim=12)
    cfg = make_config(feed, model={"path": str(other)})
    with pytest.raises(ModelError, match="embedded with model test-spectral") as info:
        Daemon(load_config(cfg), handle_signals=False).run()
    assert "edgeasd bank rebuild" in info.value.help


def test_bank_written_by_another_process_is_not_overwritten(tmp_path, make_config) -> None:
    from edgeasd.agent.enrollment import file_enrollment
    from edgeasd.agent.runloop.stages import make_embedder

    feed = wav(tmp_path / "f.wav", [(6, "normal")])
    config = load_config(make_config(feed))
    other = wav(tmp_path / "other.wav", [(3, "normal")], seed=9)
    d = Daemon(config, initial_enroll=[(2, "a"), (2, "b")], handle_signals=False)

    def on_record(r: dict) -> None:
        if r["event"] == "window" and r["index"] == 2:  # between the two live enrollments
            file_enrollment.enroll_files_direct(
                resolve_paths(config),
                [other],
                "direct",
                make_embedder(config),
                config.scoring,
                config.enrollment,
            )

    d.on_record = on_record
    d.run()
    bank = load_bank(tmp_path / "state" / "bank")
    assert sorted(bank.domains_) == ["a", "a", "b", "b"] + ["direct"] * 3


def test_second_daemon_refuses_and_leaves_the_first_alone(tmp_path, make_config) -> None:
    import os
    import threading
    import time

    from edgeasd.agent.control.client import ControlClient
    from edgeasd.errors import ControlError

    feed = wav(tmp_path / "f.wav", [(2, "normal")])
    cfg = make_config(None, source={"kind": "file", "path": str(feed), "realtime": True,
                                    "loop": True})  # fmt: skip
    first = Daemon(load_config(cfg), handle_signals=False)
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        sock = tmp_path / "run" / "control.sock"
        deadline = time.monotonic() + 60  # generous: a loaded 2-core CI machine starts slowly
        while time.monotonic() < deadline:  # the socket listens first; "still starting" till sinks
            try:
                if sock.exists() and ControlClient(sock).request("status"):
                    break
            except ControlError:
                pass
            time.sleep(0.05)
        assert ControlClient(sock).request("status")["pid"] == os.getpid()
        with pytest.raises(ControlError, match="already listens"):
            Daemon(load_config(cfg), handle_signals=False).run()
        assert ControlClient(sock).request("status")["state"] in ("starting", "learning")
    finally:
        first.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "stopped"


def test_one_enrollment_session_is_not_enough_to_score(tmp_path, make_config) -> None:
    feed = wav(tmp_path / "f.wav", [(6, "normal")])
    d, records = _run(make_config(feed), initial_enroll=[(4, "a")])
    decisions = [r["decision"] for r in records if r["event"] == "window"]
    assert decisions == ["enrolling"] * 4 + ["learning"] * 2
    snap = d.status.snapshot()
    assert snap["learning_needed"] == 0
    assert "enroll a second recording of at least 60 seconds" in snap["learning"]
    assert d.status.line().startswith("learning: one recording enrolled: enroll a second")


def test_sd_notify_ready_status_watchdog_stopping(tmp_path, make_config, monkeypatch) -> None:
    import socket

    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0)
    monkeypatch.setenv("NOTIFY_SOCKET", addr)
    feed = wav(tmp_path / "f.wav", [(5, "normal")])
    _run(make_config(feed), initial_enroll=[(2, "a"), (2, "b")])
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    sock.close()
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    assert "STATUS=" in messages[ready]
    assert any("WATCHDOG=1" in m for m in messages[ready:])
    assert not any("WATCHDOG=1" in m for m in messages[:ready])
    assert any(m.startswith("STATUS=score ") for m in messages)  # the last score
    assert messages[-1] == "STOPPING=1"


def test_enroll_next_abandoned_by_its_client_enrolls_nothing(tmp_path, make_config) -> None:
    import socket
    import threading
    import time

    feed = wav(tmp_path / "f.wav", [(2, "normal")])
    source = {"kind": "file", "path": str(feed), "realtime": True, "loop": True}
    d = Daemon(load_config(make_config(None, source=source)), handle_signals=False)
    thread = threading.Thread(target=d.run)
    thread.start()
    try:
        path = tmp_path / "run" / "control.sock"
        for _ in range(300):
            if path.exists() and hasattr(d, "sinks"):
                break
            time.sleep(0.05)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        client.sendall(b'{"op": "enroll_next", "n": 2, "domain": "x"}\n')
        for _ in range(100):  # until the first window is collected (shown from acceptance)
            if (d.status.snapshot()["enrolling"] or {}).get("collected"):
                break
            time.sleep(0.05)
        assert d.status.snapshot()["enrolling"]["collected"] == 1
        client.close()  # Ctrl-C
        time.sleep(2.5)  # past the point where the request would have completed
        assert d.status.snapshot()["enrolling"] is None
        assert not (tmp_path / "state" / "bank").exists()
    finally:
        d.stop()
        thread.join(20)


class _FailingOnce:
    """An embedder whose first ``embed`` call raises a RuntimeError (an unexpected bug)."""

    def __init__(self, inner) -> None:
        self.inner, self.failed = inner, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, x):
        if not self.failed:
            self.failed = True
            raise RuntimeError("injected embedder failure")
        return self.inner.embed(x)


def _assert_internal_error(cmd) -> None:
    from edgeasd.errors import ControlError

    with pytest.raises(ControlError) as info:
        cmd.wait()  # what the control thread sends back to `edgeasd enroll`
    assert "RuntimeError: injected" in info.value.message
    assert "nothing was enrolled" in info.value.message
    assert "journalctl -u edgeasd" in info.value.help


def test_unexpected_error_in_live_enrollment_answers_and_keeps_running(
    tmp_path, make_config, monkeypatch, caplog
) -> None:
    from edgeasd.agent.runloop import stages

    real = stages.make_embedder  # the daemon gets its model through open_model_and_bank
    monkeypatch.setattr(stages, "make_embedder", lambda cfg: _FailingOnce(real(cfg)))
    feed = wav(tmp_path / "f.wav", [(8, "normal")])
    with caplog.at_level("ERROR", logger="edgeasd.agent.runloop.daemon"):
        d, records = _run(make_config(feed), initial_enroll=[(2, "a"), (2, "b"), (2, "c")])
    failed, *others = d.initial
    _assert_internal_error(failed)
    assert [cmd.wait()["bank_size"] for cmd in others] == [2, 4]  # the daemon went on
    assert sorted(load_bank(tmp_path / "state" / "bank").domains_) == ["b"] * 2 + ["c"] * 2
    decisions = [r["decision"] for r in records if r["event"] == "window"]
    # windows are embedded as they are collected (only embeddings are held), so request
    # "a" fails at its first window, and "b" and "c" collect the next four
    assert decisions == ["enrolling"] * 5 + ["normal"] * 3
    (logged,) = [r for r in caplog.records if r.exc_info]
    assert "injected embedder failure" in logged.exc_text


def test_unexpected_error_in_a_file_commit_leaves_the_bank_intact(
    tmp_path, make_config, monkeypatch
) -> None:
    from edgeasd.agent.control.handoff import Command
    from edgeasd.agent.enrollment import enroll, file_enrollment
    from edgeasd.agent.runloop.stages import make_embedder

    config = load_config(make_config(wav(tmp_path / "f.wav", [(6, "normal")])))
    files = [wav(tmp_path / "other.wav", [(3, "normal")], seed=9)]
    commit = Command(
        "commit", {"batches": file_enrollment.file_batches(files, make_embedder(config), "direct")}
    )
    real_save = enroll.save_bank

    def save_failing_once(bank, path):
        if not commit.done.is_set():  # after the references were added in memory
            raise RuntimeError("injected save failure")
        return real_save(bank, path)

    monkeypatch.setattr(enroll, "save_bank", save_failing_once)
    d = Daemon(config, initial_enroll=[(2, "a"), (2, "b")], handle_signals=False)
    d._commands.put(commit)  # as `edgeasd enroll FILE` would, next to two --next requests
    assert d.run() == 0
    with pytest.raises(Exception, match="RuntimeError: injected save failure"):
        commit.wait()
    assert "nothing was enrolled" in commit.error.message
    assert "journalctl -u edgeasd" in commit.error.help
    assert sorted(load_bank(tmp_path / "state" / "bank").domains_) == ["a"] * 2 + ["b"] * 2
    assert sorted(d.bank.domains_) == ["a"] * 2 + ["b"] * 2  # no half-enrolled "direct"


def test_a_long_episode_repeats_a_reminder_with_its_peak_score(tmp_path, make_config) -> None:
    feed = wav(tmp_path / "f.wav", [(4, "normal"), (6, "anomalous"), (2, "normal")])
    cfg = make_config(feed, detector={"reminder_seconds": 2.5})
    _, records = _run(cfg, initial_enroll=[(2, "a"), (2, "b")])
    events = [r for r in records if r["event"] in ("alert", "reminder", "recovered")]
    assert [(e["event"], e["window_index"]) for e in events] == [
        ("alert", 4),
        ("reminder", 7),  # 3 s after the alert (>= 2.5 s), then 3 s after the reminder
        ("recovered", 10),
    ]
    peak = max(r["score"] for r in records if r["event"] == "window" and 4 <= r["index"] <= 7)
    assert events[1]["max_score"] == pytest.approx(peak, rel=1e-5)
    assert events[1]["kind"] == "anomaly" and events[1]["started"] == events[0]["time"]


def test_windows_enrolled_by_next_are_scored_but_raise_no_alert(tmp_path, make_config) -> None:
    """The operator declared the audio of an ``enroll --next`` normal: its windows are still
    scored and logged (with their verdict), only the detector is not fed (issue 10)."""
    feed = wav(tmp_path / "f.wav", [(6, "normal"), (4, "anomalous"), (2, "normal")])
    cfg = make_config(feed, enrollment={"group_seconds": 2.0}, detector={"k": 1, "n": 1})
    d, records = _run(cfg, initial_enroll=[(6, "source"), (4, "declared")])
    windows = [r for r in records if r["event"] == "window"]
    assert [w["decision"] for w in windows] == ["enrolling"] * 10 + ["normal"] * 2
    declared = windows[6:10]
    assert all("score" in w and w["alerts_suppressed"] for w in declared)
    assert [w["verdict"] for w in declared] == ["anomalous"] * 4  # logged as it scored
    assert not [r for r in records if r["event"] == "alert"]
    assert sorted(set(d.bank.domains_.tolist())) == ["declared", "source"]
