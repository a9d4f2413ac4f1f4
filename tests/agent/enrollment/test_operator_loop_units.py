"""Units of the operator loop: the enrollment guard against a plain re-scoring, alert ids,
episode audio read back by id, recordings the bank cannot represent, bank edits' bad input,
and commissioning per condition."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.agent.alerts import commissioning
from edgeasd.agent.alerts.alert_audio import AlertAudio
from edgeasd.agent.alerts.episode_audio import (
    EPISODE_MAX_WINDOWS,
    EpisodeKeeper,
    alert_id,
    episode_audio,
)
from edgeasd.agent.enrollment import bank_edits, guard
from edgeasd.agent.enrollment.batch import Batch
from edgeasd.agent.enrollment.file_enrollment import refuse_unrepresentable
from edgeasd.audio.io import write_audio
from edgeasd.errors import AudioFileError, BankError, InputError
from edgeasd.scoring import ReferenceBank, save_bank, store


def _bank(rng) -> tuple[ReferenceBank, np.ndarray]:
    base = rng.normal(size=8)
    bank = ReferenceBank(8)
    bank.enroll(
        base + 0.1 * rng.normal(size=(12, 8)),
        group=[f"g{i // 3}" for i in range(12)],
        domain="source",
    )
    return bank, base


def _batch(x: np.ndarray, domain: str, starts=()) -> Batch:
    return Batch(
        embeddings=np.asarray(x, np.float32),
        domain=domain,
        group="file-x-000",
        segments=[],
        sample_rate=16000,
        origin="/data/rec.wav",
        window_starts=tuple(starts),
    )


def test_guard_refuses_exactly_the_windows_above_the_threshold() -> None:
    rng = np.random.default_rng(1)
    bank, base = _bank(rng)
    x = np.concatenate([base + 0.1 * rng.normal(size=(3, 8)), rng.normal(size=(2, 8)) * 5])
    scores = bank.score(x)  # the plain reference: the bank's own scores, thresholded
    threshold = float(np.sort(scores)[2] + np.sort(scores)[3]) / 2
    above = int(np.sum(scores > threshold))
    assert 0 < above < 5
    batch = _batch(x, "source", starts=[0.0, 10.0, 20.0, 70.0, 80.0])
    with pytest.raises(guard.AnomalousEnrollment, match=f"{above} of 5 windows") as err:
        guard.check(bank, threshold, [batch])
    first = int(np.argmax(scores > threshold))
    minutes, seconds = divmod(10.0 * first if first < 3 else 70.0 + 10 * (first - 3), 60)
    assert f"/data/rec.wav at {int(minutes)}:{seconds:04.1f}" in err.value.message
    report = guard.check(bank, threshold, [batch], accept_anomalous=True)
    assert report["checked"] and len(report["anomalous"]) == above
    # a new condition is exempt: its distance is reported instead
    report = guard.check(bank, threshold, [_batch(x, "target")])
    ratio = float(np.median(scores)) / threshold
    assert report["new_conditions"]["target"]["times_threshold"] == pytest.approx(ratio, rel=1e-3)
    assert not report["anomalous"]
    # no threshold yet: nothing to judge, said so
    report = guard.check(bank, None, [batch])
    assert not report["checked"] and "no threshold yet" in report["words"][0]


def test_alert_ids_and_episode_audio_by_id(tmp_path) -> None:
    assert alert_id(0.0, 42) == "19700101-000000-42"
    keeper = EpisodeKeeper("19700101-000000-42")
    assert [keeper.take() for _ in range(EPISODE_MAX_WINDOWS + 2)][-2:] == [None, None]
    writer = AlertAudio(tmp_path, 10**8, 16000)
    x = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    for n in (1, 0):  # written out of order: read back by episode_window
        meta = {"unix_time": 100.0 + n, "window_index": 7 + n, "alert_id": "19700101-000140-7"}
        writer.write(x, {**meta, "episode_window": n, "nearest_domain": "belt"})
    episode = episode_audio(tmp_path, "19700101-000140-7")
    assert [r["episode_window"] for r in episode.records] == [0, 1]
    assert episode.domain == "belt" and not episode.missing_first
    assert np.allclose(episode.samples[0], x, atol=1e-4)
    with pytest.raises(InputError, match="no alert 19700101-000000-1"):
        episode_audio(tmp_path, "19700101-000000-1")
    logged = [{"event": "alert", "alert_id": "19700101-000000-1"}]
    with pytest.raises(InputError, match="audio of alert 19700101-000000-1 is gone"):
        episode_audio(tmp_path, "19700101-000000-1", logged)
    with pytest.raises(InputError, match="not an alert id"):
        episode_audio(tmp_path, "../../etc/passwd")


@pytest.mark.parametrize(
    ("rate", "subtype", "needle"),
    [(8000, "PCM_16", "sampled at 8000 Hz"), (16000, "PCM_U8", "8-bit audio")],
)
def test_recordings_the_bank_cannot_represent_are_refused(tmp_path, rate, subtype, needle) -> None:
    path = tmp_path / "x.wav"
    write_audio(path, np.full(rate, 0.1, np.float32), rate, subtype=subtype)
    with pytest.raises(AudioFileError, match=needle):
        refuse_unrepresentable(path, "x.wav", 16000)
    ok = tmp_path / "ok.wav"
    write_audio(ok, np.full(16000, 0.1, np.float32), 16000, subtype="PCM_16")
    refuse_unrepresentable(ok, "ok.wav", 16000)  # no error


def test_bank_edits_refuse_bad_input_and_change_nothing(tmp_path) -> None:
    rng = np.random.default_rng(2)
    bank, _ = _bank(rng)
    path = tmp_path / "bank"
    save_bank(bank, path)
    with pytest.raises(BankError, match=r"no reference with id\(s\) \[999\]"):
        bank_edits.remove_references(bank, path, [0, 999], None)
    assert len(store.load_bank(path)) == 12
    for bad in ([], ["1"], [True], "1"):
        with pytest.raises(InputError, match="one or more reference ids"):
            bank_edits.check_ids(bad)
    with pytest.raises(BankError, match="no backup generation 3"):
        bank_edits.restore_generation(path, 3)
    with pytest.raises(InputError, match="not 0"):
        bank_edits.restore_generation(path, 0)


def test_commissioning_in_plain_words() -> None:
    rng = np.random.default_rng(3)
    bank, base = _bank(rng)  # 12 refs, 4 groups of source
    bank.enroll(base + 0.1 * rng.normal(size=(3, 8)), group="t0", domain="target")
    keys = {"condition", "minutes", "sessions", "minutes_needed", "recordings_needed"}
    keys |= {"provisional", "words"}
    assert all(keys <= set(c) for c in commissioning.conditions(bank, hop_seconds=30.0))
    got = {c["condition"]: c for c in commissioning.conditions(bank, hop_seconds=30.0)}
    # 12 x 30 s = 6 min, but in 4 recording groups: one more recording is needed (5, the
    # calibration's MIN_CONDITION_GROUPS); 3 x 30 s = 1.5 min in 1 group: both are short
    src = got["source"]
    assert src["minutes"] == pytest.approx(6.0) and src["provisional"]
    assert src["minutes_needed"] == 0 and src["recordings_needed"] == 1
    assert "enroll 1 more recording of its normal operation" in src["words"]
    assert got["target"]["provisional"] and got["target"]["minutes"] == pytest.approx(1.5)
    assert got["target"]["recordings_needed"] == 4
    assert "enroll at least 4 more minutes in 4 more recordings" in got["target"]["words"]
    assert "alerts are provisional" in got["target"]["words"]
    assert "--domain target" in got["target"]["words"]
    bank.enroll(base + 0.1 * rng.normal(size=(3, 8)), group="g4", domain="source")
    got = {c["condition"]: c for c in commissioning.conditions(bank, hop_seconds=30.0)}
    assert not got["source"]["provisional"] and got["source"]["recordings_needed"] == 0
    assert "commissioned" in got["source"]["words"]
