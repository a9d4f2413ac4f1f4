"""The official metric: against scikit-learn and against three real DCASE 2022 systems."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.errors import InputError
from edgeasd.evaluation.metrics import (
    harmonic_mean,
    id_result,
    roc_auc,
    section_result,
    summarize,
    summarize_2020,
)
from edgeasd.evaluation.scorefiles import evaluate_score_dir


def _sklearn_metrics():
    """scikit-learn is a test-only cross-check; the product does not need it."""
    return pytest.importorskip("sklearn.metrics")


SYSTEMS = ("TransAE", "STgram-MFN-FocalLoss", "STgram-MFN-GMM1")


@st.composite
def labelled_scores(draw):
    n = draw(st.integers(2, 60))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    if len(set(labels)) < 2:
        labels[0], labels[-1] = 0, 1
    # Few distinct values so that ties are common.
    pool = draw(st.sampled_from([3, 8, 1000]))
    scores = draw(st.lists(st.integers(0, pool), min_size=n, max_size=n))
    scale = draw(st.floats(1e-3, 1e3))
    return np.array(labels), np.array(scores, dtype=float) * scale


@settings(max_examples=200, deadline=None)
@given(labelled_scores(), st.sampled_from([None, 0.1, 0.05, 0.3, 0.999, 1.0]))
def test_roc_auc_equals_sklearn(data, max_fpr):
    y, s = data
    expected = _sklearn_metrics().roc_auc_score(y, s, max_fpr=max_fpr)
    assert roc_auc(y, s, max_fpr=max_fpr) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_known_values():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.ones(4)) == 0.5  # all tied: the diagonal
    assert roc_auc(y, np.ones(4), max_fpr=0.1) == pytest.approx(0.5)
    assert roc_auc(y, np.array([0.1, 0.2, 0.3, 0.4]), max_fpr=0.1) == pytest.approx(1.0)


def test_roc_auc_rejects_bad_input():
    with pytest.raises(InputError, match="both normal and anomalous"):
        roc_auc(np.zeros(3), np.arange(3.0))
    with pytest.raises(InputError, match="NaN"):
        roc_auc(np.array([0, 1]), np.array([0.0, np.nan]))
    with pytest.raises(InputError, match="max_fpr"):
        roc_auc(np.array([0, 1]), np.array([0.0, 1.0]), max_fpr=1.5)
    with pytest.raises(InputError, match="equal length"):
        roc_auc(np.array([0, 1]), np.array([0.0]))


def test_section_result_uses_all_anomalies_per_domain():
    # source normals score low, target normals high; anomalies in both domains in between.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    d = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    s = np.array([0.0, 0.1, 0.9, 1.0, 0.5, 0.6, 0.4, 0.7])
    r = section_result("fan", "00", y, s, d)
    assert r.auc_source == 1.0  # both source normals below all four anomalies
    assert r.auc_target == 0.0
    assert r.pauc == pytest.approx(roc_auc(y, s, max_fpr=0.1))
    assert r.pauc == pytest.approx(_sklearn_metrics().roc_auc_score(y, s, max_fpr=0.1))
    assert r.auc_all == pytest.approx(0.5)


def test_harmonic_mean_floors_at_epsilon():
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean([1.0, 0.25]) == pytest.approx(0.4)
    assert 0 < harmonic_mean([0.0, 1.0]) < 1e-15


def test_summary_2020_means():
    y = np.array([0, 0, 1, 1])
    rs = [
        id_result("fan", "00", y, np.array([0, 1, 2, 3.0])),
        id_result("fan", "02", y, np.array([0, 2, 1, 3.0])),
    ]
    out = summarize_2020(rs)
    assert out["fan"][0] == pytest.approx(0.875)
    assert out["all"] == out["fan"]


def _published(path: Path) -> tuple[dict, dict, dict]:
    """result.csv -> per-section values, per-machine means, system totals."""
    sections, means, totals = {}, {}, {}
    machine = None
    with open(path) as f:
        for row in csv.reader(f):
            if not row:
                continue
            if len(row) == 1:
                machine = row[0]
            elif row[0] == "section":
                continue
            elif row[0].startswith("("):
                totals[row[0]] = tuple(float(v) for v in row[1:4])
            elif row[0] in ("arithmetic mean", "harmonic mean"):
                means[(machine, row[0])] = tuple(float(v) for v in row[1:4])
            else:
                sections[(machine, row[0])] = tuple(float(v) for v in row[1:4])
    return sections, means, totals


@pytest.mark.parametrize("system", SYSTEMS)
def test_reproduces_published_dcase2022_results(shared_data, system):
    folder = shared_data / "dcase2022-t2-scores" / system
    sections, means, totals = _published(folder / "result.csv")
    summary = evaluate_score_dir(folder)
    assert len(sections) == 21 and len(summary.sections) == 21
    for r in summary.sections:
        src, tgt, pauc = sections[(r.machine, r.section)]
        assert r.auc_source == pytest.approx(src, abs=1e-9)
        assert r.auc_target == pytest.approx(tgt, abs=1e-9)
        assert r.pauc == pytest.approx(pauc, abs=1e-9)
    for (machine, kind), published in means.items():
        ours = summary.per_machine[machine]["amean" if kind.startswith("a") else "hmean"]
        assert ours == pytest.approx(published, abs=1e-9)
    # The system totals are printed with 4 decimals: match to that precision. Their "(H)" line
    # is that repository's own convention: the mean over machine types of the per-type
    # harmonic means (the 2023+ official score is the harmonic mean over all values instead).
    a = (summary.amean_source, summary.amean_target, summary.amean_pauc)
    h = tuple(np.mean([m["hmean"] for m in summary.per_machine.values()], axis=0))
    assert a == pytest.approx(totals["(A)Total Average"], abs=5e-5 + 1e-12)
    assert h == pytest.approx(totals["(H)Total Average"], abs=5e-5 + 1e-12)


def test_official_score_matches_definition(shared_data):
    summary = evaluate_score_dir(shared_data / "dcase2022-t2-scores" / "TransAE")
    vals = [v for r in summary.sections for v in (r.auc_source, r.auc_target, r.pauc)]
    assert summary.official_score == pytest.approx(len(vals) / sum(1 / v for v in vals))
    assert summary.arithmetic_mean == pytest.approx(np.mean(vals))
    assert summarize(summary.sections).official_score == summary.official_score
