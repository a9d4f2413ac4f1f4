"""Enrollment helpers: file batches, atomic commit, kept audio with its size cap."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.agent.enrollment import bank_lifecycle, enroll, file_enrollment
from edgeasd.agent.enrollment.batch import Batch, validate_tag
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.config import Config
from edgeasd.embedding.onnx import Embedder
from edgeasd.errors import AudioFileError, InputError, ModelError
from edgeasd.scoring import load_bank, save_bank

from ..conftest import RATE, wav


@pytest.fixture
def embedder(model) -> Embedder:
    return Embedder(model)


def test_file_batches_one_group_per_file_and_bad_files_refuse_all(tmp_path, embedder) -> None:
    a = wav(tmp_path / "a.wav", [(3.5, "normal")], seed=1)
    b = wav(tmp_path / "b.wav", [(1, "normal"), (1, "silence"), (1, "normal")], seed=2)
    batches = file_enrollment.file_batches([a, b], embedder, "target")
    assert [len(x.embeddings) for x in batches] == [3, 2]  # partial and silent windows dropped
    assert len({x.group for x in batches}) == 2 and {x.domain for x in batches} == {"target"}
    assert batches[0].origin == str(a.resolve())
    assert [x.segment_lengths for x in batches] == [(), ()]  # no stage_dir: no audio kept
    kept = file_enrollment.file_batches([b], embedder, "target", stage_dir=tmp_path / "st")
    # the silent window between the two good ones is kept: the group's contiguous audio
    assert kept[0].segment_lengths == (3 * RATE,) and kept[0].staged.is_file()
    enroll.discard_staged(kept)
    assert not list((tmp_path / "st").iterdir())
    short = wav(tmp_path / "short.wav", [(0.5, "normal")])
    with pytest.raises(AudioFileError, match=r"short.wav: no usable 1 s window in 0.5 s"):
        file_enrollment.file_batches([a, short], embedder, "x")
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(AudioFileError, match=r"junk\.wav"):
        file_enrollment.file_batches([tmp_path / "junk.wav"], embedder, "x")


def test_commit_is_all_or_nothing_on_disk(tmp_path, embedder) -> None:
    path = tmp_path / "bank"
    bank = bank_lifecycle.new_bank(Config().scoring, embedder.info)
    good = Batch(np.ones((2, 16), np.float32), "s", "g1", [], RATE, "x")
    ids = enroll.commit(bank, path, [good])
    assert ids == [0, 1]
    bad = Batch(np.full((2, 16), np.nan, np.float32), "s", "g3", [], RATE, "x")
    good2 = Batch(np.ones((1, 16), np.float32) * 2, "s", "g2", [], RATE, "x")
    with pytest.raises(InputError):
        enroll.commit(bank, path, [good2, bad])
    assert len(load_bank(path)) == 2  # the half-enrolled batch never reached disk


def test_open_bank_checks_the_model(tmp_path, embedder) -> None:
    path = tmp_path / "bank"
    bank = bank_lifecycle.open_bank(path, Config().scoring, embedder.info)
    assert len(bank) == 0 and bank.meta["model_id"] == embedder.info.id
    bank.enroll(np.eye(3, 16, dtype=np.float32) + 0.1)
    save_bank(bank, path)
    other = type(embedder.info)(**{**embedder.info.__dict__, "sha256": "f" * 64})
    with pytest.raises(ModelError, match="ffffffffffffffff") as info:
        bank_lifecycle.open_bank(path, Config().scoring, other)
    assert "edgeasd bank rebuild" in info.value.help


def _batch(group: str, seconds: float, seed: int) -> enroll.Batch:
    rng = np.random.default_rng(seed)
    seg = (0.1 * rng.standard_normal(round(seconds * RATE))).astype(np.float32)
    return Batch(np.ones((1, 16), np.float32), "d", group, [seg, seg[:RATE]], RATE, "live")


def test_audio_store_keeps_segments_and_tracks_ids(tmp_path) -> None:
    store = AudioStore(tmp_path / "audio", max_bytes=10**9)
    store.keep(_batch("g1", 2, 0), [0, 1])
    store.keep(_batch("g2", 1, 1), [2])
    records = store.records()
    assert [r["group"] for r in records] == ["g1", "g2"]
    segs = list(store.segments(records[0]))
    assert [len(s) for s in segs] == [2 * RATE, RATE]
    assert np.abs(segs[1] - segs[0][:RATE]).max() < 1e-3  # FLAC 16 bit
    store.forget([1])
    assert store.records()[0]["ids"] == [0]
    store.forget([0])  # group empty: its audio goes
    assert [r["group"] for r in store.records()] == ["g2"]
    assert not (tmp_path / "audio" / "g1.flac").exists()


def test_audio_store_cap_deletes_oldest(tmp_path, caplog) -> None:
    store = AudioStore(tmp_path / "audio", max_bytes=10**9)
    store.keep(_batch("old", 3, 0), [0])
    one = store.size()
    store.max_bytes = int(one * 1.5)
    store.keep(_batch("new", 3, 1), [1])
    assert [r["group"] for r in store.records()] == ["new"]
    assert store.size() <= store.max_bytes
    assert "deleting the audio of group old" in caplog.text


def _clipped(path, seconds: float = 2.0, gain: float = 20.0):
    """Normal machine sound with the gain turned up until several % of it clips."""
    from support.onnx_models import machine_sound

    from edgeasd.audio.io import write_audio

    x = np.clip(gain * machine_sound(seconds, RATE, seed=5), -1.0, 1.0).astype(np.float32)
    write_audio(path, x, RATE, subtype="FLOAT")
    return path


def test_enrollment_refuses_clipped_audio_and_says_why(tmp_path, embedder) -> None:
    clipped = _clipped(tmp_path / "clipped.wav")
    with pytest.raises(AudioFileError, match="2 clipped") as info:
        file_enrollment.file_batches([clipped], embedder, "x")
    assert "must not learn clipping as normal" in info.value.message
    assert "lower the input gain" in info.value.help


def test_a_request_of_several_groups_does_not_warn_about_a_single_group(
    tmp_path, embedder, caplog
) -> None:
    files = [wav(tmp_path / f"n{i}.wav", [(2, "normal")], seed=30 + i) for i in range(2)]
    batches = file_enrollment.file_batches(files, embedder, "source")
    bank = bank_lifecycle.new_bank(Config().scoring, embedder.info)
    with caplog.at_level("WARNING"):
        enroll.commit(bank, tmp_path / "bank", batches)
    assert "outside its own group" not in caplog.text  # the two files see each other
    assert not np.isnan(bank.raw_density_).any()


def test_scoring_settings_differing_from_the_bank_warn_with_the_rebuild_hint(
    tmp_path, embedder, caplog
) -> None:
    path = tmp_path / "bank"
    bank = bank_lifecycle.new_bank(Config().scoring, embedder.info)
    bank.enroll(np.eye(3, 16, dtype=np.float32) + 0.1)
    save_bank(bank, path)
    assert bank_lifecycle.settings_mismatch(bank, Config().scoring) is None
    changed = Config().replace(scoring={"k": 3, "norm": "difference"}).scoring
    with caplog.at_level("WARNING"):
        bank_lifecycle.open_bank(path, changed, embedder.info)
    assert "scoring.k: config 3, bank 1" in caplog.text
    assert "scoring.norm: config 'difference', bank 'ratio'" in caplog.text
    assert "edgeasd bank rebuild" in caplog.text


def test_a_bank_of_the_condition_rules_first_version_warns_with_the_rebuild_hint(
    tmp_path, embedder, caplog
) -> None:
    """A bank built before the lone-group factor keeps its rule's version 1 (its file has
    none); the operator is told, and told how to move on."""
    from edgeasd.scoring.references import Geometry
    from edgeasd.scoring.serialize import to_state
    from edgeasd.scoring.store import encode

    path = tmp_path / "bank"
    bank = bank_lifecycle.new_bank(Config().scoring, embedder.info)
    bank.enroll(np.eye(3, 16, dtype=np.float32) + 0.1)
    header, arrays = to_state(bank)
    del header["params"]["condition_version"]  # as the first version wrote it
    path.write_bytes(encode(header, arrays))
    with caplog.at_level("WARNING"):
        old = bank_lifecycle.open_bank(path, Config().scoring, embedder.info)
    g = old.references_.geometry
    assert (g.density_rule, g.condition_version) == ("condition", 1)
    assert "'condition' version 1, this edgeasd's version 2" in caplog.text
    assert "edgeasd bank rebuild" in caplog.text
    # the paper's rule has no version to move on
    paper = Config().replace(scoring={"density_rule": "paper"}).scoring
    bank = bank_lifecycle.new_bank(paper, embedder.info)
    bank.references_.geometry = Geometry(16, density_rule="paper", condition_version=1)
    assert bank_lifecycle.settings_mismatch(bank, paper) is None


@pytest.mark.parametrize("tag", ["source", "belt-2.after_fix", "x" * 64])
def test_validate_tag_accepts_safe_tags(tag) -> None:
    assert validate_tag("domain", tag) == tag


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        ("", "must not be empty"),
        (None, "must not be empty"),
        ("a b", "contains ' '"),
        ("a\nb", "contains '\\n'"),
        ("\x1b[2J", "contains '\\x1b'"),
        ("../../etc", "contains '/'"),
        (".hidden", "starts with '.'"),
        ("x" * 65, "longer than 64"),
    ],
)
def test_validate_tag_refuses_by_name(tag, why) -> None:
    with pytest.raises(InputError, match="the group tag") as info:
        validate_tag("group", tag)
    assert why in info.value.message and info.value.help


def test_commit_holds_the_bank_at_max_references_and_records_it(tmp_path, embedder) -> None:
    """Each commit over the cap reduces the saved bank; bank summary says so."""
    from edgeasd.cli.bank import _cap_lines, bank_summary_dict

    path = tmp_path / "bank"
    bank = bank_lifecycle.new_bank(Config().scoring, embedder.info)
    rng = np.random.default_rng(0)
    for g in range(12):
        x = rng.normal(size=16) + 0.05 * rng.normal(size=(4, 16))
        batch = Batch(x.astype(np.float32), "s" if g % 3 else "t", f"g{g}", [], RATE, "x")
        enroll.commit(bank, path, [batch], max_references=20)
        assert len(bank) <= 20
    saved = load_bank(path)
    assert len(saved) == len(bank) and set(saved.domains_) == {"s", "t"}
    assert set(saved.groups_) == {f"g{g}" for g in range(12)}  # 12 groups fit in 18
    red = saved.meta["reductions"]
    assert red["count"] >= 2 and red["last_before"] > 20 and red["last_after"] == 18
    config = Config().replace(scoring={"max_references": 100})
    lines = _cap_lines(bank_summary_dict(saved, config))
    assert lines[0].startswith(f"cap: {len(saved)} of at most 100 references")
    assert f"reduced {red['count']} time(s), {red['removed']} near-duplicate" in lines[1]
    assert "every recording group and condition still represented" in lines[1]
