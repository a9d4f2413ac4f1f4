"""Operator commands in-process: enroll (direct), score, bank list/summary/remove/rebuild,
status and tail without a daemon, config check, doctor."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from support.onnx_models import make_test_model

from edgeasd.cli import main
from edgeasd.scoring import load_bank

from .conftest import wav


@pytest.fixture
def enrolled(tmp_path, make_config, capsys):
    """A config whose bank holds three recordings (3 groups, 2 windows each)."""
    cfg = make_config(None)
    files = [wav(tmp_path / f"n{i}.wav", [(2, "normal")], seed=10 * i) for i in range(3)]
    assert main(["enroll", "--config", str(cfg), "--domain", "source", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "enrolled 6 references directly (no daemon running) in 3 group(s)" in out
    return cfg


def test_enroll_direct_and_bank_list_summary(enrolled, tmp_path, capsys) -> None:
    assert main(["bank", "list", "--config", str(enrolled), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == list(range(6)) and {r["domain"] for r in rows} == {"source"}
    assert main(["bank", "summary", "--config", str(enrolled), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["references"] == 6 and s["domains"]["source"]["groups"] == 3
    rep = s["threshold_report"]  # issue 9/17: threshold, rule, forecast, commissioning
    assert rep["rule"] == "auto" and rep["threshold"] == s["threshold"]
    # 6 windows of 1 s: no forecast number, the minutes that would give one (issue 17)
    assert rep["predicted_false_alarms_per_day"] is None and not rep["forecast"]["known"]
    assert "more minutes" in rep["forecast"]["words"]
    (source,) = rep["commissioning"]
    assert source["provisional"] and source["minutes"] == pytest.approx(0.1)
    assert "condition 'source': 0.1 min enrolled in 3 recording groups" in rep["warning"]
    assert main(["bank", "summary", "--config", str(enrolled)]) == 0
    out = capsys.readouterr().out
    assert "false alerts a day: not known yet" in out and "alerts are provisional" in out


def test_enroll_needs_next_or_files(make_config, capsys) -> None:
    assert main(["enroll", "--config", str(make_config(None))]) == 2
    assert "either --next N or one or more FILEs" in capsys.readouterr().err


def test_score_table_and_csv(enrolled, tmp_path, capsys) -> None:
    normal = wav(tmp_path / "ok.wav", [(2, "normal")], seed=77)
    bad = wav(tmp_path / "bad.wav", [(2, "anomalous")], seed=78)
    capsys.readouterr()
    assert main(["score", "--config", str(enrolled), str(normal), str(bad)]) == 0
    table = capsys.readouterr().out
    lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in table.splitlines()[2:]}
    assert lines["ok.wav"].endswith("normal") and lines["bad.wav"].endswith("ANOMALOUS")
    assert main(["score", "--config", str(enrolled), "--csv", str(bad)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["decision"] for r in rows] == ["anomalous", "anomalous"]
    assert {"file", "window", "score", "threshold", "nearest_id", "nearest_domain"} <= set(rows[0])


def test_score_table_shows_long_file_names_in_full(enrolled, tmp_path, capsys) -> None:
    """Two long names that differ only at their start stay apart (issue 19)."""
    tail = "_pump_section_00_normal_recording_of_the_morning_shift.wav"
    files = [wav(tmp_path / f"{who}{tail}", [(2, "normal")], seed=5) for who in ("a", "b")]
    capsys.readouterr()
    assert main(["score", "--config", str(enrolled), *map(str, files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("file "))
    rows = lines[header + 1 :]
    assert [r.split()[0] for r in rows] == [str(f) for f in files]
    assert len({r.index(" normal") for r in rows}) == 1  # one column


def test_bank_remove(enrolled, tmp_path, capsys) -> None:
    assert main(["bank", "remove", "--config", str(enrolled), "0", "1"]) == 0
    assert "removed 2 references directly (no daemon running); 4 left" in capsys.readouterr().out
    assert main(["bank", "remove", "--config", str(enrolled), "99"]) == 2
    assert "no reference with id(s) [99]" in capsys.readouterr().err
    audio = sorted(p.name for p in (tmp_path / "state" / "audio").glob("*.json"))
    assert len(audio) == 2  # the emptied group's audio is gone


def test_model_change_refused_then_bank_rebuild(enrolled, tmp_path, make_config, capsys):
    new_model = make_test_model(tmp_path / "new.onnx", window_seconds=0.5, dim=12)
    cfg = make_config(None, model={"path": str(new_model)})
    probe = wav(tmp_path / "p.wav", [(2, "normal")], seed=5)
    assert main(["score", "--config", str(cfg), str(probe)]) == 2
    err = capsys.readouterr().err
    assert "embedded with model" in err and "edgeasd bank rebuild" in err
    assert main(["bank", "rebuild", "--config", str(cfg)]) == 0
    assert "12 references in 3 groups" in capsys.readouterr().out  # 0.5 s windows now
    bank = load_bank(tmp_path / "state" / "bank")
    assert bank.dim == 12 and len(bank) == 12 and "new.onnx" not in bank.meta["model_id"]
    assert (tmp_path / "state" / "bank.before-rebuild").exists()
    assert main(["score", "--config", str(cfg), str(probe)]) == 0


def test_status_and_tail_without_daemon(enrolled, capsys) -> None:
    assert main(["status", "--config", str(enrolled)]) == 3
    assert "no daemon has run with this configuration yet" in capsys.readouterr().out
    assert main(["tail", "--config", str(enrolled)]) == 0


def test_config_check_and_doctor(make_config, tmp_path, capsys) -> None:
    cfg = make_config(wav(tmp_path / "f.wav", [(2, "normal")]))
    assert main(["config", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "configuration ok" in out and str(tmp_path / "state") in out
    assert "group_seconds" not in out  # the default: one group per recording
    assert main(["doctor", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    for name in ("config", "paths", "model", "bank", "numba", "disk"):
        assert f"] {name}" in out
    assert "[WARN] bank" in out  # no bank yet: learning
    old = make_config(None, enrollment={"group_seconds": 60.0})  # an earlier release's copy
    assert main(["config", "check", "--config", str(old)]) == 0
    out = capsys.readouterr().out
    assert "note: enrollment.group_seconds is 60 s: a recording longer than that" in out
    assert "the default, 3600, makes each recording one group" in out
    broken = make_config(None, model={"path": str(tmp_path / "missing.onnx")})
    assert main(["doctor", "--config", str(broken)]) == 1
    assert "[FAIL] model" in capsys.readouterr().out


def test_doctor_device_check_uses_the_configured_quality_thresholds(
    make_config, monkeypatch
) -> None:
    """A quiet (-60 dBFS) microphone passes the default -70 dBFS silence floor and fails
    a configured -50 dBFS one; the configured ``source.capture_channels`` is used."""
    import numpy as np

    from edgeasd.agent.service import doctor
    from edgeasd.audio import microphone
    from edgeasd.audio.sources import AudioBlock
    from edgeasd.config import load_config

    opened = []

    class QuietMicrophone:
        def __init__(self, device, sample_rate, **options):
            opened.append(options)
            self.info = type("Info", (), {"name": "quiet"})()
            self.rate = sample_rate

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def blocks(self):
            rng = np.random.default_rng(0)
            noise = rng.standard_normal(self.rate) * 10 ** (-60 / 20)
            yield AudioBlock(noise.astype(np.float32), 0.0)

    monkeypatch.setattr(microphone, "MicrophoneSource", QuietMicrophone)
    mic = {"kind": "microphone", "capture_channels": 2}
    default = load_config(make_config(None, source=mic))
    check = doctor._device_check(default, 16000)
    assert check.level == "ok", check
    strict = load_config(make_config(None, source=mic, quality={"silence_dbfs": -50.0}))
    check = doctor._device_check(strict, 16000)
    assert check.level == "fail" and check.detail.endswith("silence") and check.help
    assert opened[-1]["capture_channels"] == 2


def test_enroll_next_without_daemon_captures_from_the_source(make_config, tmp_path, capsys):
    cfg = make_config(wav(tmp_path / "f.wav", [(1, "silence"), (4, "normal")]))
    assert main(["enroll", "--config", str(cfg), "--domain", "target", "--next", "3"]) == 0
    out = capsys.readouterr().out
    assert "enrolled 3 references directly (no daemon running) in 1 group(s)" in out
    assert sorted(load_bank(tmp_path / "state" / "bank").domains_) == ["target"] * 3
    # a source that ends first: nothing enrolled, a clear message
    assert main(["enroll", "--config", str(cfg), "--next", "9"]) == 2
    assert "stopped before the enrollment completed" in capsys.readouterr().err
    assert len(load_bank(tmp_path / "state" / "bank")) == 3


def test_tail_prints_alerts_human_and_json(make_config, tmp_path, capsys) -> None:
    from edgeasd.agent.runloop.daemon import Daemon
    from edgeasd.config import load_config

    cfg = make_config(wav(tmp_path / "f.wav", [(4, "normal"), (2, "anomalous")]))
    Daemon(load_config(cfg), initial_enroll=[(2, "a"), (2, "b")], handle_signals=False).run()
    capsys.readouterr()
    assert main(["tail", "--config", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("ALERT" in line and "window 4" in line for line in lines)
    assert main(["tail", "--config", str(cfg), "--json", "-n", "1"]) == 0
    (last,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert last["event"] == "alert" and last["window_index"] == 4


def test_bad_audio_files_one_clear_message_each(enrolled, tmp_path, capsys) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    good = wav(tmp_path / "good.wav", [(2, "normal")], seed=3)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    for bad in (empty, truncated, text):
        assert main(["enroll", "--config", str(enrolled), str(good), str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and bad.name in err and "Traceback" not in err
    assert len(load_bank(tmp_path / "state" / "bank")) == 6  # nothing half enrolled


def test_score_eight_channel_mimii_clip(enrolled, shared_data, capsys) -> None:
    clip = sorted((shared_data / "mimii").rglob("*.wav"))[0]
    assert main(["score", "--config", str(enrolled), "--csv", str(clip)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 10  # 10 s, 8 channels mixed down, 1 s windows


def test_tail_follow_prints_new_events(make_config, tmp_path) -> None:
    import subprocess
    import sys

    from edgeasd.agent.alerts.event_log import JsonlLog

    cfg = make_config(None)
    (tmp_path / "log").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeasd", "tail", "-f", "--json", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with JsonlLog(tmp_path / "log" / "alerts.jsonl", 1 << 20, 1) as sink:
            sink.write({"time": "2026-11-28T10:00:00Z", "event": "alert", "score": 9.0})
        line = proc.stdout.readline()  # blocks until tail -f prints it
        assert json.loads(line)["event"] == "alert"
    finally:
        proc.terminate()
        proc.wait(10)


def test_ensemble_model_through_daemon_and_cli(make_config, model, tmp_path, capsys) -> None:
    """``model.path`` listing two models: the daemon, score, status and doctor use the ensemble."""
    from edgeasd.agent.runloop.daemon import Daemon
    from edgeasd.config import load_config

    second = make_test_model(tmp_path / "m2.onnx", window_seconds=1.0, dim=8, frame=128)
    feed = wav(tmp_path / "f.wav", [(4, "normal"), (2, "anomalous")])
    cfg = make_config(feed, model={"path": [str(model), str(second)]})
    Daemon(load_config(cfg), initial_enroll=[(2, "a"), (2, "b")], handle_signals=False).run()
    bank = load_bank(tmp_path / "state" / "bank")
    assert bank.dim == 24 and bank.meta["model_id"].startswith("ensemble-2x:")
    capsys.readouterr()
    assert main(["tail", "--config", str(cfg), "--json"]) == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["window_index"] for e in events if e["event"] == "alert"] == [4]
    bad = wav(tmp_path / "bad.wav", [(2, "anomalous")], seed=78)
    assert main(["score", "--config", str(cfg), "--csv", str(bad)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["decision"] for r in rows] == ["anomalous", "anomalous"]
    assert main(["status", "--config", str(cfg)]) == 3  # last snapshot, daemon stopped
    out = capsys.readouterr().out
    assert re.search(r"^model: +ensemble-2x:\S+ the average of test-spectral-1:", out, re.M)
    assert out.count("test-spectral-1:") == 2
    assert main(["config", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^  model: +ensemble of 2 \(distances averaged\)\n +- {model}$", out, re.M)
    main(["doctor", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "[ok  ] model        ensemble-2x:" in out and "; averages test-spectral-1:" in out
    # the bank of the ensemble refuses one of its members alone
    single = make_config(feed, model={"path": str(model)})
    assert main(["score", "--config", str(single), str(bad)]) == 2
    assert "embedded with model ensemble-2x:" in capsys.readouterr().err


def test_direct_enroll_and_bank_summary_report_the_configured_rule(enrolled, tmp_path, capsys):
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(enrolled.read_text() + "threshold:\n  rule: fixed\n  value: 42.0\n")
    more = wav(tmp_path / "more.wav", [(2, "normal")], seed=99)
    assert main(["enroll", "--config", str(fixed), str(more)]) == 0
    out = capsys.readouterr().out
    assert "threshold 42 (config: threshold.rule fixed" in out and "state: ready" in out
    assert main(["bank", "summary", "--config", str(enrolled), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["state"] == "ready" and s["threshold"] != 42.0  # the default rule: auto
    assert s["threshold_source"].startswith("bank of 8")


def test_score_on_a_learning_bank_prints_learning_not_verdicts(enrolled, tmp_path, capsys):
    learning = tmp_path / "learning.yaml"
    learning.write_text(enrolled.read_text().replace("min_references: 4", "min_references: 50"))
    bad = wav(tmp_path / "bad.wav", [(2, "anomalous")], seed=78)
    capsys.readouterr()
    assert main(["score", "--config", str(learning), "--csv", str(bad)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["decision"] for r in rows] == ["learning", "learning"]
    assert "44 more normal windows needed" in rows[0]["reason"] and rows[0]["score"]
    assert main(["score", "--config", str(learning), str(bad)]) == 0
    out = capsys.readouterr().out
    assert "learning: 44 more normal windows needed" in out
    assert "ANOMALOUS" not in out and out.splitlines()[-1].endswith("learning")
    assert main(["bank", "summary", "--config", str(learning)]) == 0
    assert "state: learning: 44 more" in capsys.readouterr().out


def test_window_seconds_is_checked_against_the_model(make_config, tmp_path, capsys) -> None:
    from edgeasd.agent.runloop.daemon import Daemon
    from edgeasd.config import load_config
    from edgeasd.errors import ConfigError

    cfg = make_config(wav(tmp_path / "f.wav", [(2, "normal")]), window={"seconds": 2.0})
    assert main(["config", "check", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'window.seconds' is 2 but the model" in err and "takes 1 s windows" in err
    assert main(["doctor", "--config", str(cfg)]) == 1
    assert "[FAIL] model" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"window\.seconds"):
        Daemon(load_config(cfg), handle_signals=False).run()  # refused at start-up


def test_config_check_warns_about_scoring_keys_a_bank_ignores(enrolled, tmp_path, capsys):
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        enrolled.read_text().replace("min_references: 4", "min_references: 4\n  k: 2")
    )
    assert main(["config", "check", "--config", str(changed)]) == 0
    out = capsys.readouterr().out
    assert "scoring.k: config 2, bank 1" in out and "edgeasd bank rebuild" in out
    main(["doctor", "--config", str(changed)])  # (no microphone here: the device check fails)
    out = capsys.readouterr().out
    assert "[WARN] bank" in out and "scoring.k: config 2, bank 1" in out
