"""The operator's correction loop against a real daemon and the CLI as subprocesses (issue 17
part 4): an alert's id and kept episode audio, ``edgeasd feedback ALERT normal`` (with an
unknown id, a repeat, a request while ``enroll --next`` collects, gone audio), the enrollment
guard and ``--accept-anomalous``, 8-bit and 8 kHz recordings refused, ``bank remove`` and
``bank restore`` through the running daemon and directly, an event for every bank change, and
commissioning per condition in ``status`` and ``bank summary``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import numpy as np
from support.onnx_models import machine_sound

from e2e.harness import RATE, REPO, Setup, feed_signal, make_setup, write_normal
from edgeasd.audio.io import write_audio
from edgeasd.scoring import load_bank


def _bank_events(setup: Setup) -> list[tuple[str, str]]:
    kinds = ("enrolled", "feedback", "removed", "restored")
    return [(e["event"], e.get("via")) for e in setup.events() if e["event"] in kinds]


def _setup(tmp_path) -> Setup:
    feed = tmp_path / "feed.wav"
    write_audio(feed, feed_signal([(3, False), (4, True), (3, False)]), RATE, subtype="FLOAT")
    source = {"kind": "file", "path": str(feed), "realtime": True, "loop": True}
    return make_setup(tmp_path / "agent", source)


def test_guard_and_unrepresentable_audio_without_daemon(tmp_path) -> None:
    setup = _setup(tmp_path)
    normals = [str(write_normal(tmp_path / f"n{i}.wav", 2, seed=10 + i)) for i in range(3)]
    out = setup.cli("enroll", *normals, check=True).stdout
    assert "directly (no daemon running)" in out
    assert _bank_events(setup) == [("enrolled", "direct")]
    fault = tmp_path / "fault.wav"
    write_audio(fault, machine_sound(2, RATE, anomalous=True, seed=77), RATE, subtype="FLOAT")
    refused = setup.cli("enroll", str(fault))
    assert refused.returncode != 0
    assert "score above the threshold" in refused.stderr and "fault.wav at 0:" in refused.stderr
    assert "--accept-anomalous" in refused.stderr
    assert len(load_bank(setup.state / "bank")) == 6  # nothing enrolled
    # `enroll --next` without a daemon captures from the source itself: the feed's fault
    # (windows 3-6) is refused by time, then accepted when confirmed
    refused = setup.cli("enroll", "--next", "5")
    assert refused.returncode != 0 and "live window at " in refused.stderr, refused.stderr
    out = setup.cli("enroll", "--next", "5", "--accept-anomalous", check=True).stdout
    assert "above the threshold enrolled as normal (accepted by the operator)" in out
    assert len(load_bank(setup.state / "bank")) == 11
    assert _bank_events(setup)[-1] == ("enrolled", "direct")
    # a new condition is exempt, and says how far it lies from the bank
    out = setup.cli("enroll", "--domain", "other", str(fault), check=True).stdout
    assert "new condition 'other'" in out and "x the threshold" in out
    # 8-bit and 8 kHz recordings: refused by name, whatever the domain
    x = machine_sound(2, RATE, seed=5)
    write_audio(tmp_path / "u8.wav", x, RATE, subtype="PCM_U8")
    write_audio(tmp_path / "low.wav", x[::2], RATE // 2, subtype="PCM_16")
    for name, words in (("u8.wav", "8-bit audio"), ("low.wav", "sampled at 8000 Hz")):
        bad = setup.cli("enroll", "--domain", "new", str(tmp_path / name))
        assert bad.returncode != 0 and words in bad.stderr and name in bad.stderr, bad.stderr
    assert len(load_bank(setup.state / "bank")) == 13
    summary = setup.cli("bank", "summary", check=True).stdout
    assert "condition 'source': " in summary and "alerts are provisional" in summary


def test_feedback_guard_and_live_bank_changes_through_the_daemon(tmp_path) -> None:
    setup = _setup(tmp_path)
    normals = [str(write_normal(tmp_path / f"n{i}.wav", 2, seed=10 + i)) for i in range(3)]
    setup.cli("enroll", *normals, check=True)
    fault = tmp_path / "fault.wav"
    write_audio(fault, machine_sound(2, RATE, anomalous=True, seed=77), RATE, subtype="FLOAT")
    proc = setup.start()
    enrolling = None
    try:
        setup.wait_ready(proc)
        alert = setup.wait_for(
            lambda s: next((e for e in setup.events() if e["event"] == "alert"), None),
            what="an alert",
        )
        alert_id = alert["alert_id"]
        kept = setup.logs / "alert-audio"
        setup.wait_for(lambda s: len(list(kept.glob("alert-*.json"))) >= 2, what="episode audio")
        # bad input: not an id, an unknown id
        bad = setup.cli("feedback", "no-such-alert", "normal")
        assert bad.returncode != 0 and "is not an alert id" in bad.stderr
        bad = setup.cli("feedback", "20200101-000000-7", "normal")
        assert bad.returncode != 0 and "no alert 20200101-000000-7" in bad.stderr
        # the guard, through the daemon: refused by name, then accepted when confirmed
        refused = setup.cli("enroll", str(fault))
        assert refused.returncode != 0 and "fault.wav at 0:" in refused.stderr
        assert not list((setup.state / "audio").glob("*.part"))  # its staged audio deleted
        u8 = tmp_path / "u8.wav"
        write_audio(u8, machine_sound(2, RATE, seed=5), RATE, subtype="PCM_U8")
        refused = setup.cli("enroll", "--domain", "new", str(u8))
        assert refused.returncode != 0 and "u8.wav is 8-bit audio" in refused.stderr
        # live windows too: the feed's fault (4 of each 10 s) is named by time
        refused = setup.cli("enroll", "--next", "10")
        assert refused.returncode != 0, refused.stdout
        assert "live window at " in refused.stderr and "nothing was enrolled" in refused.stderr
        # feedback while an `enroll --next` collects: refused, nothing enrolled
        enrolling = subprocess.Popen(
            [sys.executable, "-m", "edgeasd", "enroll", "--next", "500", *setup.config_args()],
            env=setup.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        setup.wait_for(lambda s: s.get("enrolling"), what="enroll --next collecting")
        busy = setup.cli("feedback", alert_id, "normal")
        assert busy.returncode != 0 and "is collecting windows" in busy.stderr, busy.stderr
        enrolling.send_signal(signal.SIGINT)
        enrolling.wait(30)
        setup.wait_for(lambda s: not s.get("enrolling"), what="the abandoned enroll --next")
        size = len(load_bank(setup.state / "bank"))
        assert size == 6
        # feedback: the episode's windows enrolled as normal of their condition
        out = setup.cli("feedback", alert_id, "normal", check=True).stdout
        assert f"alert {alert_id}" in out and "by the running daemon" in out
        assert "condition 'source'" in out
        bank = load_bank(setup.state / "bank")
        groups = sorted({g for g in bank.groups_.tolist() if g.startswith("feedback-")})
        assert groups == [f"feedback-{alert_id}-000"]
        added = int(np.sum(bank.groups_ == groups[0]))
        assert 1 <= added <= 6 and len(bank) == size + added
        again = setup.cli("feedback", alert_id, "normal")
        assert again.returncode != 0 and "already enrolled as normal" in again.stderr
        accepted = setup.cli("enroll", "--accept-anomalous", str(fault), check=True).stdout
        assert "by the running daemon" in accepted
        # live bank changes: remove, restore (a missing generation first)
        new_ids = [int(i) for i in load_bank(setup.state / "bank").ids_[-2:]]
        out = setup.cli("bank", "remove", *map(str, new_ids), check=True).stdout
        assert "removed 2 references by the running daemon" in out
        missing = setup.cli("bank", "restore", "9")
        assert missing.returncode != 0 and "no backup generation 9" in missing.stderr
        out = setup.cli("bank", "restore", "1", check=True).stdout
        assert "by the running daemon" in out
        assert len(load_bank(setup.state / "bank")) == len(bank) + 2  # before the removal
        setup.wait_for(lambda s: s["bank_size"] == len(bank) + 2, what="the restored bank")
        status = setup.cli("status", check=True).stdout
        assert re.search(r"^condition: +condition 'source'", status, re.MULTILINE), status
        # an alert whose audio is gone
        for f in kept.glob("alert-*"):
            f.unlink()
        gone = setup.cli("feedback", alert_id, "normal")
        assert gone.returncode != 0 and f"the audio of alert {alert_id} is gone" in gone.stderr
        assert proc.poll() is None  # monitoring went on through all of it
        assert setup.stop(proc) == 0
    finally:
        if enrolling is not None and enrolling.poll() is None:
            enrolling.kill()
        if proc.poll() is None:
            proc.kill()
    # with the daemon stopped, remove and restore work directly, and write their events too
    last = str(int(load_bank(setup.state / "bank").ids_[-1]))
    out = setup.cli("bank", "remove", last, check=True).stdout
    assert "directly (no daemon running)" in out
    out = setup.cli("bank", "restore", "1", check=True).stdout
    assert "directly (no daemon running)" in out
    assert _bank_events(setup) == [
        ("enrolled", "direct"),
        ("feedback", "daemon"),
        ("enrolled", "daemon"),
        ("removed", "daemon"),
        ("restored", "daemon"),
        ("removed", "direct"),
        ("restored", "direct"),
    ]
    report = tmp_path / "report.html"
    setup.cli("report", "--since", "1h", "-o", str(report), check=True, timeout=300)
    text = report.read_text()
    assert "<h2>Bank changes</h2>" in text and f"alert {alert_id} confirmed normal" in text
    feedback = next(e for e in setup.events() if e["event"] == "feedback")
    assert feedback["alert_id"] == alert_id and feedback["condition"] == "source"
    alerts = [e for e in setup.events() if e["event"] in ("alert", "recovered")]
    assert all("alert_id" in e for e in alerts)
