"""`benchmarks/real_holdout_folders.py`: held-out-by-type folders, with simulated normals added."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from edgeasd.evaluation.datasets import scan_dataset
from edgeasd.train.data import class_key

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_holdout_folders.py"


def _real_folder(root: Path) -> Path:
    """A manifest: a fan (trained on) and a valve (held out), one normal and one anomaly each."""
    rows = []
    for machine in ("fan", "valve"):
        for label in ("normal", "anomaly"):
            f = root / machine / label / f"{machine}_{label}.wav"
            f.parent.mkdir(parents=True)
            f.write_bytes(b"RIFF")  # only linked, never read
            rows.append({"file": f"{machine}/{label}/{f.name}", "machine": machine, "label": label,
                         "machine_id": "id_02"})  # fmt: skip
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def _sim_folder(root: Path) -> Path:
    """An ``edgeasd synth``-named folder: a simulated fan with two normals and one anomaly."""
    names = [
        "train/section_00_source_train_normal_0000_spd_1200_mic_1.wav",
        "train/section_00_source_train_normal_0001_spd_1500_mic_2.wav",
        "test/section_00_source_test_anomaly_0000_spd_1200_mic_1.wav",
    ]
    for name in names:
        f = root / "fan" / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"RIFF")
    return root


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def test_with_sim_adds_the_simulated_normals_as_their_own_classes(tmp_path: Path) -> None:
    src, sim, out = _real_folder(tmp_path / "real"), _sim_folder(tmp_path / "sim"), tmp_path / "o"
    done = run(out, "fan", "--source", src, "--with-sim", sim)
    assert done.returncode == 0, done.stderr
    assert "'simulated': 2" in done.stdout
    keys = sorted(class_key(c) for c in scan_dataset(out / "train"))
    # the real fan (id_02 -> section 02 and attribute id_02) and the simulated fan's two attribute
    # classes stay apart; the simulated anomaly is not linked
    assert keys == [
        "fan/section_02/id_02",
        "sim_fan/section_00/spd_1200_mic_1",
        "sim_fan/section_00/spd_1500_mic_2",
    ]
    assert not (out / "heldout" / "sim_fan").exists()
    assert {p.name for p in (out / "heldout").rglob("*.wav")} == {
        "valve_normal.wav",
        "valve_anomaly.wav",
    }


def test_with_sim_names_a_folder_without_simulated_normals(tmp_path: Path) -> None:
    src, empty = _real_folder(tmp_path / "real"), tmp_path / "empty"
    empty.mkdir()
    done = run(tmp_path / "o", "fan", "--source", src, "--with-sim", empty)
    assert done.returncode != 0
    assert str(empty) in done.stderr and "edgeasd synth" in done.stderr
