"""`edgeasd metrics` and `edgeasd eval` as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeasd.evaluation.pipeline import clip_windows
from edgeasd.evaluation.scorefiles import evaluate_score_dir


def edgeasd(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeasd", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_metrics_on_real_dcase2022_scores(shared_data):
    folder = shared_data / "dcase2022-t2-scores" / "STgram-MFN-GMM1"
    res = edgeasd("metrics", str(folder))
    assert res.returncode == 0, res.stderr
    assert "| ToyCar | 00 | 89.82 | 37.50 | 54.21 |" in res.stdout  # result.csv, rounded
    summary = evaluate_score_dir(folder)
    assert f"{100 * summary.official_score:.2f} %" in res.stdout
    res = edgeasd("metrics", str(folder), "--json")
    data = json.loads(res.stdout)
    assert data["official_score"] == pytest.approx(summary.official_score, abs=1e-12)
    assert data["sections"][0]["auc_source"] == pytest.approx(0.8982, abs=1e-9)


def test_metrics_reports_operator_errors(tmp_path):
    res = edgeasd("metrics", str(tmp_path / "missing"))
    assert res.returncode == 2
    assert "error: score folder" in res.stderr and "hint:" in res.stderr
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text("section_00_0000.wav,0.1\n")
    res = edgeasd("metrics", str(tmp_path))
    assert res.returncode == 2 and "--ground-truth" in res.stderr


def test_clip_windows():
    x = np.arange(25, dtype=np.float32)
    assert clip_windows(x, 10).shape == (2, 10)
    short = clip_windows(x[:4], 10)
    assert short.shape == (1, 10) and list(short[0, 4:8]) == [0, 1, 2, 3]


def test_eval_end_to_end(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    args = [
        "eval",
        "--data",
        str(tiny_dataset),
        "--out",
        str(out),
        "--approaches",
        "nn,knn-ratio,domain-std",
        "--json",
    ]
    res = edgeasd(*args)
    assert res.returncode == 0, res.stderr
    printed = json.loads(res.stdout)
    assert set(printed["approaches"]) == {"nn", "knn-ratio", "domain-std"}
    report = (out / "report.md").read_text()
    assert "## Comparison (Table II)" in report
    assert "proposed: knn (K=1), ratio" in report and "false alarms (target)" in report
    assert "| knn-ratio, quantile |" in report
    # The score files are in the official format and give the reported figures.
    nn_dir = out / "scores" / "nn"
    assert (nn_dir / "anomaly_score_toy_section_00_test.csv").is_file()
    assert (nn_dir / "decision_result_toy_section_00_test.csv").is_file()
    results = json.loads((out / "results.json").read_text())
    summary = evaluate_score_dir(nn_dir)
    assert results["approaches"]["nn"]["official"] == pytest.approx(summary.official_score)
    # A second run reuses the cached embeddings.
    cached = list((out / "embedding-cache").rglob("*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert edgeasd(*args).returncode == 0
    assert cached[0].stat().st_mtime_ns == stamp


def test_eval_rejects_unknown_approach(tiny_dataset, tmp_path):
    res = edgeasd(
        "eval",
        "--data",
        str(tiny_dataset),
        "--out",
        str(tmp_path),
        "--approaches",
        "magic",
    )
    assert res.returncode == 2 and "unknown approach 'magic'" in res.stderr


def test_eval_on_anonymized_test_files_with_ground_truth(tiny_dataset, tmp_path):
    """Renamed test clips + official ground-truth CSVs give the same figures as dev names."""
    import shutil

    from edgeasd.embedding.models import spectral_model_path
    from edgeasd.evaluation.datasets import scan_dataset
    from edgeasd.evaluation.pipeline import run_evaluation

    anon = tmp_path / "eval_data" / "toy"
    shutil.copytree(tiny_dataset / "toy" / "train", anon / "train")
    (anon / "test").mkdir()
    gt = tmp_path / "gt"
    (gt / "ground_truth_data").mkdir(parents=True)
    (gt / "ground_truth_domain").mkdir()
    labels, domains = [], []
    test = [c for c in scan_dataset(tiny_dataset) if c.split == "test"]
    for i, c in enumerate(test):
        name = f"section_00_{i:04d}.wav"
        shutil.copy(c.path, anon / "test" / name)
        labels.append(f"{name},{int(c.label == 'anomaly')}\n")
        domains.append(f"{name},{int(c.domain == 'target')}\n")
    csv_name = "ground_truth_toy_section_00_test.csv"
    (gt / "ground_truth_data" / csv_name).write_text("".join(labels))
    (gt / "ground_truth_domain" / csv_name).write_text("".join(domains))

    kw = {"model": spectral_model_path(), "approaches": ["nn"], "progress": False}
    dev = run_evaluation(tiny_dataset, out=tmp_path / "dev", **kw)
    ev = run_evaluation(tmp_path / "eval_data", out=tmp_path / "ev", ground_truth=gt, **kw)
    assert ev.results[0].row() == pytest.approx(dev.results[0].row())
    scores = tmp_path / "ev" / "scores" / "nn"
    assert (
        (scores / "anomaly_score_toy_section_00_test.csv")
        .read_text()
        .startswith("section_00_0000.wav,")
    )
    # `edgeasd metrics` needs the ground truth for anonymized names, and agrees with it.
    res = edgeasd("metrics", str(scores), "--ground-truth", str(gt), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["official_score"] == pytest.approx(
        dev.results[0].row()["official"]
    )


def test_eval_of_an_ensemble_of_models(tiny_dataset, tmp_path, capsys):
    """``eval --model A B``: the ensemble of the two models is embedded and evaluated."""
    from support.onnx_models import make_test_model

    from edgeasd.cli import main

    a = make_test_model(tmp_path / "a.onnx", window_seconds=1.0)
    b = make_test_model(tmp_path / "b.onnx", window_seconds=1.0, dim=8, frame=128)
    out = tmp_path / "out"
    args = ["eval", "--data", str(tiny_dataset), "--out", str(out), "--approaches", "nn"]
    assert main([*args, "--model", str(a), str(b), "--json"]) == 0
    capsys.readouterr()
    report = (out / "report.md").read_text()
    assert "ensemble-2x:" in report
    cached = sorted(p.name for p in (out / "embedding-cache").iterdir())
    assert cached and all("ensemble" in name for name in cached), cached
