"""``edgeasd synth`` as an operator runs it (a subprocess)."""

from __future__ import annotations

import subprocess
import sys


def _synth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeasd", "synth", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_synth_writes_the_dataset_and_reports_it(tmp_path):
    out = tmp_path / "data"
    proc = _synth(
        "--out", str(out), "--machines", "slider", "--sections", "0", "2",
        "--n-source-train", "2", "--n-target-train", "1", "--n-test", "1",
        "--seconds", "0.25", "--seed", "7", "--snr-db", "0", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "wrote 14 clips (slider)" in proc.stdout
    names = sorted(p.name for p in (out / "slider" / "train").iterdir())
    assert names[0].startswith("section_00_source_train_normal_0000_vel_")
    assert any(n.startswith("section_02_target_train_normal_0000_") for n in names)
    assert (out / "manifest.json").is_file()


def test_synth_names_an_unknown_machine_and_lists_the_known_ones(tmp_path):
    proc = _synth("--out", str(tmp_path / "x"), "--machines", "toaster", "--quiet")
    assert proc.returncode == 2
    assert "unknown machine type 'toaster'" in proc.stderr
    assert "hint:" in proc.stderr and "fan" in proc.stderr


def test_synth_lists_machine_types_and_requires_an_output_folder(capsys):
    from edgeasd.cli import main

    assert main(["synth", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "fan:" in listing and "anomalies: " in listing
    assert main(["synth", "--machines", "fan"]) == 2
    assert "--out" in capsys.readouterr().err
