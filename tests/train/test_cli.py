"""``edgeasd train``, ``export`` and ``quantize`` as subprocesses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeasd.embedding.models import spectral_model_path
from edgeasd.train.metadata import metadata_of

pytestmark = pytest.mark.train


def edgeasd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeasd", *args], capture_output=True, text=True, timeout=300
    )


def test_train_then_resume(tiny_dataset, tmp_path):
    common = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path), "--batch-size", "8"]
    common += ["--width", "2", "--window-seconds", "2", "--threads", "1"]
    first = edgeasd(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "checkpoint.pt").is_file()
    again = edgeasd(*common, "--epochs", "1")  # already done: resumes and stops at once
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr


def test_export_without_checkpoint_explains(tmp_path):
    r = edgeasd("export", str(tmp_path))
    assert r.returncode == 2
    assert "no training checkpoint" in r.stderr and "edgeasd train" in r.stderr


def test_train_on_a_missing_folder_explains(tmp_path):
    r = edgeasd("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert r.returncode == 2
    assert "does not exist" in r.stderr


def test_quantize_writes_an_int8_model_with_metadata(tiny_dataset, tmp_path):
    out = tmp_path / "q.onnx"
    r = edgeasd(
        "quantize",
        str(spectral_model_path()),
        "--calibration",
        str(tiny_dataset),
        "--out",
        str(out),
        "--windows",
        "4",
    )
    assert r.returncode == 0, r.stderr
    meta = metadata_of(out)
    assert meta.model_version == f"{metadata_of(spectral_model_path()).model_version}-int8"
    assert meta.embedding_dim == metadata_of(spectral_model_path()).embedding_dim
