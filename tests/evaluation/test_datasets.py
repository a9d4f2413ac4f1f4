"""DCASE layouts, ground-truth files, score files and the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeasd.errors import InputError
from edgeasd.evaluation.cache import EmbeddingCache
from edgeasd.evaluation.datasets import (
    DatasetError,
    group_sections,
    parse_clip_name,
    read_ground_truth,
    scan_dataset,
)
from edgeasd.evaluation.metrics import roc_auc
from edgeasd.evaluation.scorefiles import (
    evaluate_score_dir,
    read_score_file,
    write_score_file,
)


def test_parse_dev_name_with_attributes():
    c = parse_clip_name("section_01_target_test_anomaly_0042_car_A2_spd_28V_mic_1.wav", "ToyCar")
    assert (c.machine, c.section, c.domain, c.split, c.label) == (
        "ToyCar",
        "01",
        "target",
        "test",
        "anomaly",
    )
    assert c.attributes == "car_A2_spd_28V_mic_1"
    assert c.attribute_dict == {"car": "A2", "spd": "28V", "mic": "1"}
    assert c.layout == "dcase2021+"


def test_parse_names_of_every_layout():
    c = parse_clip_name("section_00_source_train_normal_0000.wav", "fan")
    assert (c.split, c.attributes, c.attribute_dict) == ("train", "", {})
    c = parse_clip_name("section_00_source_train_normal_0001_noAttributes.wav", "fan")
    assert c.attribute_dict == {"attributes": "noAttributes"}
    c = parse_clip_name("section_03_0017.wav", "fan")
    assert (c.section, c.label, c.domain, c.layout) == ("03", None, None, "anonymized")
    c = parse_clip_name("anomaly_id_04_00000012.wav", "valve", "test")
    assert (c.section, c.label, c.domain, c.layout) == ("04", "anomaly", None, "dcase2020")
    c = parse_clip_name("id_05_00000000.wav", "valve")
    assert (c.section, c.label, c.layout) == ("05", None, "anonymized2020")
    with pytest.raises(InputError, match="not a DCASE"):
        parse_clip_name("recording.wav", "fan")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _write_ground_truth(root: Path) -> None:
    (root / "ground_truth_data").mkdir(parents=True)
    (root / "ground_truth_domain").mkdir()
    rows = {
        "section_00_0000.wav": (1, 0),
        "section_00_0001.wav": (0, 1),
        "section_00_0002.wav": (0, 0),
        "section_00_0003.wav": (1, 1),
    }
    name = "ground_truth_bandsaw_section_00_test.csv"
    (root / "ground_truth_data" / name).write_text(
        "".join(f"{n},{lab}\n" for n, (lab, _) in rows.items())
    )
    (root / "ground_truth_domain" / name).write_text(
        "".join(f"{n},{dom}\n" for n, (_, dom) in rows.items())
    )


def test_scan_dataset_with_anonymized_eval_and_ground_truth(tmp_path):
    data = tmp_path / "eval_data"
    _touch(data / "bandsaw" / "train" / "section_00_source_train_normal_0000_vel_6.wav")
    _touch(data / "bandsaw" / "train" / "section_00_target_train_normal_0000_vel_9.wav")
    for i in range(4):
        _touch(data / "bandsaw" / "test" / f"section_00_{i:04d}.wav")
    _touch(data / "bandsaw" / "test" / "notes.wav")  # not a DCASE name: ignored
    _touch(data / "bandsaw" / "README.wav")  # not in train/ or test/: ignored
    _write_ground_truth(tmp_path / "gt")
    clips = scan_dataset(data, ground_truth=tmp_path / "gt")
    assert len(clips) == 6
    test = [c for c in clips if c.split == "test"]
    assert [(c.label, c.domain) for c in test] == [
        ("anomaly", "source"),
        ("normal", "target"),
        ("normal", "source"),
        ("anomaly", "target"),
    ]
    assert {c.domain for c in clips if c.split == "train"} == {"source", "target"}
    assert list(group_sections(clips)) == [("bandsaw", "00")]
    assert all(c.path.is_file() for c in clips)


def test_ground_truth_errors(tmp_path):
    with pytest.raises(DatasetError, match="no ground truth"):
        read_ground_truth(tmp_path)
    _write_ground_truth(tmp_path)
    bad = tmp_path / "ground_truth_data" / "ground_truth_fan_section_00_test.csv"
    bad.write_text("section_00_0000.wav,normal\n")
    with pytest.raises(DatasetError, match=r"fan_section_00_test.csv:1"):
        read_ground_truth(tmp_path)


def test_2020_layout_and_eval_data_list(tmp_path):
    for name in ("normal_id_00_00000000.wav", "anomaly_id_00_00000000.wav"):
        _touch(tmp_path / "dev" / "pump" / "test" / name)
    _touch(tmp_path / "dev" / "pump" / "train" / "normal_id_00_00000001.wav")
    clips = scan_dataset(tmp_path / "dev")
    assert [(c.split, c.label, c.section) for c in clips] == [
        ("test", "anomaly", "00"),
        ("test", "normal", "00"),
        ("train", "normal", "00"),
    ]
    (tmp_path / "eval_data_list.csv").write_text(
        "pump\nid_01_00000000.wav,normal_id_01_00000000.wav,0\n"
        "id_01_00000001.wav,anomaly_id_01_00000000.wav,1\n"
    )
    truth = read_ground_truth(tmp_path)
    assert truth[("pump", "id_01_00000001.wav")] == ("anomaly", None)


def test_scan_dataset_rejects_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no DCASE-layout clips"):
        scan_dataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")


def test_score_files_round_trip_and_anonymized_metric(tmp_path):
    _write_ground_truth(tmp_path / "gt")
    names = [f"section_00_{i:04d}.wav" for i in range(4)]
    scores = np.array([0.9, 0.2, 0.1, 0.3])
    path = write_score_file(
        tmp_path / "scores", "bandsaw", "00", names, scores, decisions=scores > 0.5
    )
    assert path.name == "anomaly_score_bandsaw_section_00_test.csv"
    assert (
        tmp_path / "scores" / "decision_result_bandsaw_section_00_test.csv"
    ).read_text().splitlines()[0] == "section_00_0000.wav,1"
    sf = read_score_file(path)
    assert sf.names == tuple(names) and np.array_equal(sf.scores, scores)
    summary = evaluate_score_dir(tmp_path / "scores", ground_truth=tmp_path / "gt")
    r = summary.sections[0]
    # source normal 0002 (0.1) vs anomalies 0.9, 0.3 -> 1; target normal 0001 (0.2) -> 1
    assert (r.auc_source, r.auc_target) == (1.0, 1.0)
    assert r.auc_all == roc_auc(np.array([1, 0, 0, 1]), scores)
    with pytest.raises(DatasetError, match="no label"):
        evaluate_score_dir(tmp_path / "scores")  # anonymized names need the ground truth
    write_score_file(tmp_path / "partial", "bandsaw", "00", names[:3], scores[:3])
    with pytest.raises(DatasetError, match="lacks 1 of the 4"):
        evaluate_score_dir(tmp_path / "partial", ground_truth=tmp_path / "gt")


def test_embedding_cache_round_trip_and_invalidation(tmp_path):
    files = [_touch(tmp_path / f"a{i}.wav") for i in range(3)]
    cache = EmbeddingCache(tmp_path / "cache")
    calls = []

    def compute(fs):
        calls.append(len(fs))
        return np.arange(len(fs) * 4, dtype=np.float32).reshape(len(fs), 4)

    first = cache.get_or_compute("m-1:abc", files, compute)
    again = cache.get_or_compute("m-1:abc", files, compute)
    assert calls == [3] and np.array_equal(first, again)
    cache.get_or_compute("m-2:def", files, compute)  # other model: recomputed
    cache.get_or_compute("m-1:abc", files[:2], compute)  # other file list: recomputed
    assert calls == [3, 3, 2]
    files[0].write_bytes(b"changed")  # changed file: recomputed
    cache.get_or_compute("m-1:abc", files, compute)
    assert calls == [3, 3, 2, 3]
    stored = next((tmp_path / "cache").rglob("*.npz"))
    with np.load(stored, allow_pickle=False) as z:  # readable without pickle
        assert z["embeddings"].dtype == np.float32
    with pytest.raises(InputError):
        cache.save("m", files, np.zeros((2, 4)))


def test_dcase2020_score_files(tmp_path):
    rows = [
        ("normal_id_00_00000000.wav", 0.1),
        ("normal_id_00_00000001.wav", 0.4),
        ("anomaly_id_00_00000000.wav", 0.3),
        ("anomaly_id_00_00000001.wav", 0.9),
    ]
    text = "".join(f"{n},{s}\n" for n, s in rows)
    (tmp_path / "anomaly_score_pump_id_00.csv").write_text(text)
    (tmp_path / "anomaly_score_pump_id_02.csv").write_text(text.replace("id_00", "id_02"))
    results = evaluate_score_dir(tmp_path)
    assert [(r.machine, r.machine_id) for r in results] == [("pump", "00"), ("pump", "02")]
    assert results[0].auc == 0.75
    assert results[0].pauc == pytest.approx(
        roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.3, 0.9]), max_fpr=0.1)
    )
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text(
        "section_00_source_test_normal_0000.wav,0.1\n"
    )
    with pytest.raises(DatasetError, match="mixes DCASE 2020"):
        evaluate_score_dir(tmp_path)


def test_scan_real_dcase2023_clips(shared_data):
    clips = scan_dataset(shared_data / "dcase2023-t2")
    assert len(clips) == 28
    assert {c.machine for c in clips} == {
        "ToyCar",
        "ToyTrain",
        "bearing",
        "fan",
        "gearbox",
        "slider",
        "valve",
    }
    assert all(c.layout == "dcase2021+" and c.section == "00" for c in clips)
    assert all(c.label is not None and c.domain is not None for c in clips)
    fan = [c for c in clips if c.machine == "fan" and c.split == "test"]
    assert {(c.domain, c.label) for c in fan} == {("source", "anomaly"), ("target", "normal")}
    assert fan[0].attribute_dict == {"m-n": "W"}


def test_split_sections_requires_labels_and_both_splits(tmp_path):
    from edgeasd.evaluation.pipeline import split_sections

    _touch(tmp_path / "d" / "saw" / "train" / "section_00_source_train_normal_0000_a_1.wav")
    _touch(tmp_path / "d" / "saw" / "test" / "section_00_0000.wav")
    clips = scan_dataset(tmp_path / "d")
    with pytest.raises(DatasetError, match="without label or domain") as err:
        split_sections(clips)
    assert "--ground-truth" in err.value.help
    with pytest.raises(DatasetError, match="1 training and 0 test"):
        split_sections([c for c in clips if c.split == "train"])
