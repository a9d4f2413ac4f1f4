"""write_dataset: DCASE layout and names, counts, WAV format, manifest, determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from edgeasd.errors import InputError
from edgeasd.synth import MACHINE_TYPES, write_dataset

NAME = re.compile(
    r"^section_(?P<section>\d{2})_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<index>\d{4})(?P<attrs>(?:_[^_/]+_[^_/]+)+)\.wav$"
)
SMALL = {
    "n_source_train": 3,
    "n_target_train": 2,
    "n_test": 2,
    "seconds": 0.25,
    "progress": False,
}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    manifest = write_dataset(root, machines=["valve", "fan"], sections=(0, 1), seed=3, **SMALL)
    return root, manifest


def test_every_file_has_a_dcase_name_in_the_right_folder(small):
    root, manifest = small
    wavs = sorted(root.rglob("*.wav"))
    assert len(wavs) == len(manifest["files"]) == 2 * 2 * (3 + 2 + 4 * 2)
    for path in wavs:
        m = NAME.match(path.name)
        assert m, path.name
        machine, split = path.parent.parent.name, path.parent.name
        assert machine in ("valve", "fan") and split == m["split"]
        assert m["split"] == "test" or m["label"] == "normal"
        tokens = m["attrs"][1:].split("_")
        names, values = tokens[0::2], tokens[1::2]
        spec = MACHINE_TYPES[machine]
        assert names == list(spec.attributes)
        for name, value in zip(names, values, strict=True):
            assert value in spec.attributes[name].values(m["domain"])


def test_counts_per_section_domain_split_and_label(small):
    root, _ = small
    counts: dict[tuple, int] = {}
    indices: dict[tuple, set] = {}
    for path in root.rglob("*.wav"):
        m = NAME.match(path.name)
        key = (path.parent.parent.name, m["section"], m["domain"], m["split"], m["label"])
        counts[key] = counts.get(key, 0) + 1
        indices.setdefault(key, set()).add(int(m["index"]))
    for machine in ("valve", "fan"):
        for section in ("00", "01"):
            assert counts[(machine, section, "source", "train", "normal")] == 3
            assert counts[(machine, section, "target", "train", "normal")] == 2
            for domain in ("source", "target"):
                for label in ("normal", "anomaly"):
                    assert counts[(machine, section, domain, "test", label)] == 2
    assert all(idx == set(range(len(idx))) for idx in indices.values())  # 0000, 0001, ...


def test_wav_files_are_16_bit_pcm_mono_16k_and_not_silent(small):
    root, _ = small
    for path in list(root.rglob("*.wav"))[:10]:
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert w.getnframes() == 4000
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert np.sqrt(np.mean(pcm.astype(float) ** 2)) > 100


def test_manifest_and_attribute_tables_describe_every_file(small):
    root, manifest = small
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert set(manifest["machines"]) == {"valve", "fan"}
    for entry in manifest["files"]:
        assert (root / entry["path"]).is_file()
        assert (entry["anomaly"] is None) == (entry["label"] == "normal")
        if entry["anomaly"]:
            assert entry["anomaly"] in MACHINE_TYPES[entry["machine"]].anomalies
            assert 0.1 <= entry["severity"] <= 1.0
    with open(root / "fan" / "attributes_01.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 13 and rows[0]["d1p"] == "spd" and rows[0]["d2p"] == "mic"
    assert all(
        r["file_name"].startswith("fan/") and (root / r["file_name"]).is_file() for r in rows
    )


def test_same_seed_same_bytes_for_any_worker_count_other_seed_other_bytes(small, tmp_path):
    root, _ = small
    again = tmp_path / "again"
    write_dataset(again, machines=["valve", "fan"], sections=(0, 1), seed=3, workers=2, **SMALL)
    assert _digest(again) == _digest(root)
    other = tmp_path / "other"
    write_dataset(other, machines=["valve"], sections=(0,), seed=4, **SMALL)
    theirs, ours = _digest(other), _digest(root)
    shared = [k for k in theirs if k.endswith(".wav")]
    assert shared and all(theirs[k] != ours[k] for k in shared)


def test_a_larger_corpus_contains_the_smaller_one_unchanged(small, tmp_path):
    root, _ = small
    big = tmp_path / "big"
    write_dataset(big, machines=["fan"], sections=(1,), seed=3, **(SMALL | {"n_source_train": 5}))
    ours, theirs = _digest(root), _digest(big)
    train = [k for k in ours if k.startswith("fan/train/section_01_source")]
    assert len(train) == 3 and all(theirs[k] == ours[k] for k in train)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"machines": ["toaster"]},
        {"machines": []},
        {"n_test": -1},
        {"sections": (100,)},
        {"severity": (0.5, 0.2)},
        {"seed": -3},
    ],
)
def test_bad_arguments_raise_input_error_before_writing(tmp_path, kwargs):
    with pytest.raises(InputError):
        write_dataset(tmp_path / "x", **(SMALL | kwargs))
    assert not (tmp_path / "x").exists()


def test_resume_renders_only_the_missing_files(tmp_path):
    root = tmp_path / "r"
    write_dataset(root, machines=["valve"], seed=1, **SMALL)
    before = _digest(root)
    missing = root / "valve" / "test" / "section_00_target_test_anomaly_0001_pat_03_pres_4.wav"
    kept = root / "valve" / "train" / "section_00_source_train_normal_0000_pat_00_pres_2.wav"
    assert missing.is_file() and kept.is_file()
    missing.unlink()
    kept.write_bytes(b"stale")  # an existing file is trusted, not re-rendered
    write_dataset(root, machines=["valve"], seed=1, resume=True, **SMALL)
    after = _digest(root)
    assert after[str(missing.relative_to(root))] == before[str(missing.relative_to(root))]
    assert kept.read_bytes() == b"stale"


def test_plan_balances_attribute_combinations_and_anomaly_kinds():
    from collections import Counter

    from edgeasd.synth.dataset import plan

    for machine in MACHINE_TYPES:
        jobs = plan([machine], [0], {("test", "source", "anomaly"): 50}, 0, (0.1, 1.0))
        kinds = Counter(j.anomaly for j in jobs)
        spec = MACHINE_TYPES[machine]
        assert set(kinds) == set(spec.anomalies)
        assert max(kinds.values()) - min(kinds.values()) <= 1
        combos = Counter(tuple(j.attributes.values()) for j in jobs)
        assert len(combos) == min(
            50, int(np.prod([len(a.source) for a in spec.attributes.values()]))
        )
        assert all(0.1 <= j.severity <= 1.0 for j in jobs)
