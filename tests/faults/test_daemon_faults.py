"""Fault suite, daemon side: bad windows, full disks, a stalled microphone.

Each test reproduces a failure of issue 10's campaign and checks the fix on the real
daemon (a subprocess) or the real component: digital zeros and NaN in the stream,
ENOSPC on the log and runtime file systems (real tiny tmpfs mounts), and corrupt
state files.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
import yaml
from e2e.harness import RATE, make_setup, write_normal
from support.onnx_models import machine_sound

from edgeasd.agent.alerts.event_log import JsonlLog
from edgeasd.agent.control.client import ControlClient
from edgeasd.agent.control.status import StatusBoard
from edgeasd.agent.enrollment import bank_lifecycle
from edgeasd.config import Config
from edgeasd.embedding.models import spectral_model_path
from edgeasd.embedding.onnx import Embedder
from edgeasd.errors import ControlError, ModelError

from .conftest import fill

SPECTRAL_SECONDS = 10  # the shipped default model's window
#: Id of edgeasd-spectral-v1.onnx as shipped before its logs got a floor (commit fb4f73e).
PREVIOUS_SPECTRAL_ID = "edgeasd-spectral-v1:a40b922cced798f5"


# ---------------------------------------------------------------------------- the model


def _unfloored(path: Path) -> Path:
    """The shipped spectral graph with its log floors removed: the file issue 10 shipped."""
    model = onnx.load(str(spectral_model_path()))
    rename = {}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Max" and "edgeasd_log_floor" in node.input:
            rename[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    for node in kept:
        node.input[:] = [rename.get(i, i) for i in node.input]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    inits = [i for i in model.graph.initializer if i.name != "edgeasd_log_floor"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    props = [p for p in model.metadata_props if p.key != "compatible_ids"]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    onnx.save(model, str(path))
    return path


def _windows_with_dropouts() -> np.ndarray:
    x = np.stack([machine_sound(SPECTRAL_SECONDS, RATE, seed=s) for s in range(3)])
    x[1, RATE : RATE + RATE // 10] = 0.0  # 0.1 s of digital zeros
    x[2] = 0.0  # all zeros
    return x


def test_shipped_model_floors_its_logs_and_the_old_graph_did_not(tmp_path) -> None:
    x = _windows_with_dropouts()
    old = ort.InferenceSession(str(_unfloored(tmp_path / "old.onnx")))
    assert not np.isfinite(old.run(None, {"waveform": x})[0][1:]).any(), "reproduction"
    model = onnx.load(str(spectral_model_path()))
    producers = {o: n for n in model.graph.node for o in n.output}
    logs = [n for n in model.graph.node if n.op_type == "Log"]
    assert logs and all(producers[n.input[0]].op_type == "Max" for n in logs)
    embedder = Embedder(spectral_model_path())
    y = embedder.embed(x)
    assert np.isfinite(y).all()
    # the floor changes nothing on real audio: the same embedding as the old graph
    new = ort.InferenceSession(str(spectral_model_path()))
    one = {"waveform": x[:1]}
    assert np.array_equal(new.run(None, one)[0], old.run(None, one)[0])
    # so banks of the file shipped before the fix stay valid: its id is declared compatible
    assert embedder.info.compatible == (PREVIOUS_SPECTRAL_ID,)
    bank = bank_lifecycle.new_bank(Config().scoring, embedder.info)
    bank.meta["model_id"] = PREVIOUS_SPECTRAL_ID
    bank_lifecycle.check_model(bank, embedder.info)  # accepted
    bank.meta["model_id"] = "edgeasd-spectral-v1:0000000000000000"
    with pytest.raises(ModelError, match="was embedded with model"):
        bank_lifecycle.check_model(bank, embedder.info)


def _feed(path: Path, parts: list[str]) -> Path:
    """A float WAV of 10 s windows: "normal", "zeros" (0.1 s dropout), "nan" (0.1 s NaN)."""
    chunks = []
    for i, kind in enumerate(parts):
        x = machine_sound(SPECTRAL_SECONDS, RATE, seed=100 + i)
        if kind == "zeros":
            x[3 * RATE : 3 * RATE + RATE // 10] = 0.0
        elif kind == "nan":
            x[3 * RATE : 3 * RATE + RATE // 10] = np.nan
        chunks.append(x)
    sf.write(path, np.concatenate(chunks), RATE, subtype="FLOAT")
    return path


def _spectral_setup(tmp_path: Path, model: Path | None, **sections):
    feed = _feed(tmp_path / "feed.wav", ["normal", "zeros", "normal", "nan", "normal"])
    setup = make_setup(
        tmp_path / "agent", {"kind": "file", "path": str(feed), "realtime": False}, **sections
    )
    config = yaml.safe_load(setup.config.read_text())
    config["model"]["path"] = str(model or spectral_model_path())
    setup.config.write_text(yaml.safe_dump(config))
    files = [write_normal(tmp_path / f"n{i}.wav", 2 * SPECTRAL_SECONDS, seed=i) for i in (1, 2)]
    setup.cli("enroll", *map(str, files), check=True, timeout=120)  # 4 refs, 2 groups
    return setup


def _run_to_end(setup) -> list[dict]:
    proc = setup.start()
    assert proc.wait(120) == 0, setup.log()
    assert "Traceback" not in setup.log()
    return setup.events("scores.jsonl")


def test_dropout_and_nan_windows_are_events_and_scoring_goes_on(tmp_path) -> None:
    setup = _spectral_setup(tmp_path, None)
    windows = _run_to_end(setup)
    assert [w["quality"] for w in windows] == ["ok", "dropout", "ok", "nan", "ok"]
    assert ["score" in w for w in windows] == [True, False, True, False, True]
    signals = [(e["previous"], e["status"]) for e in setup.events() if e["event"] == "signal"]
    assert signals == [("ok", "dropout"), ("dropout", "ok"), ("ok", "nan"), ("nan", "ok")]


def test_a_window_the_model_cannot_embed_is_an_event_not_an_exit(tmp_path) -> None:
    # the pre-fix model, with the dropout check switched off: the embedding itself is NaN
    old = _unfloored(tmp_path / "old.onnx")
    setup = _spectral_setup(tmp_path, old, quality={"dropout_samples": 10_000_000})
    windows = _run_to_end(setup)
    assert [w["quality"] for w in windows] == ["ok", "nan", "ok", "nan", "ok"]
    assert ["score" in w for w in windows] == [True, False, True, False, True]
    (event, *_) = [e for e in setup.events() if e.get("status") == "nan"]
    assert "could not embed" in event["error"] and "re-export" not in event["error"]


# ---------------------------------------------------------------------------- full disks


def _lines_whole(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "a partial line was left"
    return [json.loads(line) for line in data.splitlines()]


def test_log_on_dev_full_drops_and_counts_without_raising(caplog) -> None:
    log = JsonlLog("/dev/full")
    with caplog.at_level(logging.WARNING, logger="edgeasd.agent.alerts.event_log"):
        results = [log.write({"event": "window", "i": i}) for i in range(5)]
    assert results == [False] * 5
    assert log.health == {"dropped": 5, "error": "No space left on device"}
    assert len([r for r in caplog.records if "cannot write" in r.message]) == 1  # once
    log.close()


def test_log_on_a_full_filesystem_keeps_whole_lines_and_resumes(small_fs, caplog) -> None:
    fs = small_fs("logs", "64k")
    log = JsonlLog(fs / "scores.jsonl", max_bytes=1 << 20, backups=0)
    event = {"event": "window", "pad": "x" * 300}
    with caplog.at_level(logging.WARNING, logger="edgeasd.agent.alerts.event_log"):
        written = 0
        while log.write({**event, "i": written}):
            written += 1
        for _ in range(10):
            assert not log.write(event)
        lines = _lines_whole(fs / "scores.jsonl")
        assert [e["i"] for e in lines] == list(range(written))
        assert log.health["dropped"] == 11 and log.health["error"]
        # space returns (a filler goes away): writing resumes with whole lines
        log.rotate()  # backups=0: the live file is truncated, freeing the space
        assert log.write({**event, "i": -1})
        assert log.health["error"] is None and log.health["dropped"] == 11
    assert [e["i"] for e in _lines_whole(fs / "scores.jsonl")] == [-1]
    messages = [r.message for r in caplog.records]
    assert sum("cannot write" in m for m in messages) == 1
    assert sum("writable again" in m for m in messages) == 1


def test_status_file_on_a_full_filesystem_is_skipped_and_counted(small_fs) -> None:
    fs = small_fs("run", "64k")
    info = Embedder(spectral_model_path()).info
    board = StatusBoard(fs / "status.json", info)
    filler = fill(fs)
    board.update(state="running")  # no exception
    snap = board.snapshot()
    assert snap["status_file"]["dropped"] >= 1 and snap["status_file"]["error"]
    assert json.loads((fs / "status.json").read_text())["state"] == "starting"  # intact
    assert [p.name for p in fs.iterdir()] == sorted(["filler", "status.json"])  # no temp left
    filler.unlink()
    board.update(state="running")
    assert json.loads((fs / "status.json").read_text())["state"] == "running"
    assert board.snapshot()["status_file"]["error"] is None


def test_daemon_scores_on_with_full_log_and_runtime_disks(tmp_path, small_fs) -> None:
    logs, run = small_fs("log", "128k"), small_fs("run", "128k")
    feed = write_normal(tmp_path / "feed.wav", 6, seed=9)
    setup = make_setup(
        tmp_path / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        paths={"log_dir": str(logs), "runtime_dir": str(run)},
    )
    files = [write_normal(tmp_path / f"e{i}.wav", 3, seed=i) for i in range(2)]
    setup.cli("enroll", *map(str, files), check=True)
    proc = setup.start()
    client = ControlClient(run / "control.sock", timeout=10)

    def wait(predicate, what: str) -> dict:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert proc.poll() is None, setup.log()
            try:
                status = client.request("status")
            except ControlError:
                status = None
            if status and predicate(status):
                return status
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{setup.log()}")

    try:
        wait(lambda s: s["windows_scored"] >= 1, "scoring")
        fillers = [fill(logs), fill(run)]
        before = client.request("status")["windows_scored"]
        # scoring goes on while nothing can be written
        status = wait(
            lambda s: s["windows_scored"] >= before + 3 and s["logs"]["scores"]["dropped"],
            "scoring with full disks",
        )
        assert status["logs"]["scores"]["error"] and status["status_file"]["error"]
        out = setup.cli("status").stdout
        assert "lines dropped, failing now" in out, out
        for filler in fillers:
            filler.unlink()
        resumed = wait(
            lambda s: s["logs"]["scores"]["error"] is None and s["status_file"]["error"] is None,
            "writing again",
        )
        assert resumed["logs"]["scores"]["dropped"] >= status["logs"]["scores"]["dropped"]
        wait(
            lambda s: json.loads((run / "status.json").read_text())["windows"] > status["windows"],
            "status.json written again",
        )
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    windows = _lines_whole(logs / "scores.jsonl")
    indices = [w["index"] for w in windows]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    gap = [b - a for a, b in itertools.pairwise(indices) if b - a > 1]
    assert gap, "the dropped windows left a gap (they were dropped, not queued)"
    print(
        f"ENOSPC: {status['windows_scored'] - before} windows scored on full disks, "
        f"{resumed['logs']['scores']['dropped']} score lines dropped, "
        f"{status['status_file']['dropped']} status writes skipped, 0 partial lines, exit 0"
    )
    assert "Traceback" not in setup.log()
    journal = setup.log()
    assert journal.count("scores.jsonl: cannot write") == 1
    assert "scores.jsonl: writable again" in journal


# ---------------------------------------------------------------------------- microphone stall


def test_a_microphone_stall_and_its_recovery_reach_the_alert_log(tmp_path) -> None:
    from support.alsa_feed import AlsaFeed

    probe = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True)
    if probe.returncode != 0:  # (never imported into the test process itself)
        pytest.skip("PortAudio (apt-get install libportaudio2) missing")
    try:
        feed = AlsaFeed(
            tmp_path / "alsa", machine_sound(3, RATE), rate=RATE, realtime=True, keep_alive=False
        )
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"no ALSA capture path here: {exc}")
    setup = make_setup(
        tmp_path / "agent",
        {"kind": "microphone", "device": feed.device_name, "capture_rate": RATE},
        device={"retries": 10, "retry_delay_seconds": 0.5, "stall_seconds": 1.0},
    )
    setup.env.update(feed.env)
    proc = setup.start()
    try:
        setup.wait_ready(proc)

        def signals() -> list[str]:
            return [e["status"] for e in setup.events() if e["event"] == "signal"]

        end = time.monotonic() + 60
        while "stalled" not in signals() and time.monotonic() < end:
            assert proc.poll() is None, setup.log()
            time.sleep(0.2)
        assert "stalled" in signals(), setup.log()
        feed.resume()  # the microphone comes back (it sends silence)
        end = time.monotonic() + 60
        while "resumed" not in signals() and time.monotonic() < end:
            assert proc.poll() is None, setup.log()
            time.sleep(0.2)
        events = signals()
        assert events.index("stalled") < events.index("resumed"), events
        (stall,) = [e for e in setup.events() if e.get("status") == "stalled"]
        assert "no audio from" in stall["error"]
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        feed.close()


def test_enrollment_on_a_full_state_disk_is_refused_by_name_and_scoring_goes_on(
    tmp_path, small_fs
) -> None:
    state = small_fs("state", "512k")
    feed = write_normal(tmp_path / "feed.wav", 4, seed=9)
    setup = make_setup(
        tmp_path / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        paths={"state_dir": str(state)},
        enrollment={"keep_audio": False},
    )
    files = [write_normal(tmp_path / f"e{i}.wav", 3, seed=i) for i in range(2)]
    setup.cli("enroll", *map(str, files), check=True)
    bank_before = (state / "bank").read_bytes()
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        filler = fill(state)
        extra = write_normal(tmp_path / "extra.wav", 3, seed=5)
        result = setup.cli("enroll", str(extra))
        assert result.returncode == 2, result
        assert "cannot write the bank file" in result.stderr
        assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
        scored = setup.status()["windows_scored"]
        setup.wait_for(lambda s: s["windows_scored"] >= scored + 2, what="scoring on")
        assert (state / "bank").read_bytes() == bank_before  # nothing half written
        filler.unlink()
        result = setup.cli("enroll", str(extra), check=True)  # space is back: it works
        assert "bank: 9 references" in result.stdout
        assert setup.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in setup.log()
