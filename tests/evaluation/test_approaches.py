"""Normalization approaches on synthetic embeddings with a known ordering."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.errors import InputError
from edgeasd.evaluation.approaches import (
    APPROACHES,
    bank_scores,
    bank_scores_per_rule,
    distances,
    kmeans,
    lof_scores,
    select,
    smote,
    standardize_per_domain,
    unit,
)
from edgeasd.evaluation.metrics import section_result

from .synthetic import DIM, two_density_section
from .synthetic import cluster as _cluster


@pytest.fixture(scope="module")
def results():
    d = two_density_section()
    out = {}
    for a in APPROACHES.values():
        s = a.run(d)
        assert s.scores.shape == (200,) and np.all(np.isfinite(s.scores))
        out[a.name] = section_result(
            "toy", "00", d.test_labels, s.scores, (d.test_domains == "target").astype(int)
        )
    return out


def test_baseline_suffers_from_the_density_mismatch(results):
    assert results["nn"].auc_source > 0.95
    assert results["nn"].auc_target < 0.5


@pytest.mark.parametrize(
    "name", ["knn-ratio", "knn-difference", "gwrp-ratio", "gwrp-difference", "domain-std"]
)
def test_normalization_raises_target_auc(results, name):
    assert results[name].auc_target > results["nn"].auc_target + 0.2
    assert results[name].auc_all > results["nn"].auc_all + 0.05


def test_knn_ratio_matches_plain_reference():
    d = two_density_section(1)
    a = distances(d.test, d.train)
    rr = distances(d.train, d.train)
    np.fill_diagonal(rr, np.inf)
    rho = np.maximum(rr.min(axis=1), 1e-10)
    expected = (a / rho).min(axis=1)
    got = APPROACHES["knn-ratio"].run(d).scores
    np.testing.assert_allclose(got, expected, rtol=1e-4)  # bank batches use float32 BLAS
    plain = APPROACHES["nn"].run(d).scores
    np.testing.assert_allclose(plain, a.min(axis=1), rtol=1e-4, atol=1e-7)


def test_bank_threshold_is_finite():
    d = two_density_section(2)
    s = bank_scores(d.train, d.test, norm="ratio")
    assert np.isfinite(s.threshold) and s.threshold > 0


@pytest.mark.parametrize("norm", ["none", "ratio"])
def test_one_bank_per_rule_equals_a_bank_per_rule(norm):
    d = two_density_section(2)
    rules = ("auto", "quantile", "gamma")
    got = bank_scores_per_rule(d.train, d.test, rules, norm=norm)
    assert list(got) == list(rules)
    for rule in rules:
        want = bank_scores(d.train, d.test, norm=norm, rule=rule)
        np.testing.assert_array_equal(got[rule].scores, want.scores)
        assert got[rule].threshold == want.threshold


def test_bank_scores_without_threshold_skips_only_the_calibration():
    d = two_density_section(2)
    full = bank_scores(d.train, d.test, "gwrp", r=0.5, norm="ratio")
    bare = bank_scores(d.train, d.test, "gwrp", r=0.5, norm="ratio", threshold=False)
    np.testing.assert_array_equal(bare.scores, full.scores)
    assert np.isnan(bare.threshold) and np.isfinite(full.threshold)


def test_distances_are_half_one_minus_cosine():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, DIM)), rng.standard_normal((7, DIM))
    cos = unit(a).astype(float) @ unit(b).astype(float).T
    np.testing.assert_allclose(distances(a, b), 0.5 * (1 - cos), atol=1e-6)


def test_lof_matches_sklearn():
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(4)
    refs = np.concatenate(
        [_cluster(rng, np.eye(DIM)[0], 0.1, 60), _cluster(rng, np.eye(DIM)[1], 0.5, 15)]
    )
    test = _cluster(rng, np.eye(DIM)[0] + np.eye(DIM)[1], 0.5, 30)
    ours = lof_scores(refs, test, k=10)
    lof = neighbors.LocalOutlierFactor(n_neighbors=10, novelty=True, metric="cosine")
    theirs = -lof.fit(refs).score_samples(test)  # cosine 1 - cos = 2 A: LOF is scale-free
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(5)
    centers = np.eye(DIM)[:4]
    x = np.concatenate([_cluster(rng, c, 0.02, 40) for c in centers])
    means = kmeans(x, 4, seed=1)
    assert means.shape == (4, DIM)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1, atol=1e-5)
    # every true center has a mean within a small angle
    assert np.all(np.max(unit(centers) @ means.T, axis=1) > 0.99)
    assert kmeans(x[:3], 16).shape == (3, DIM)


def test_smote_interpolates_between_near_neighbours():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, DIM)).astype(np.float32)
    new = smote(x, 50, neighbours=2, seed=0)
    assert new.shape == (50, DIM)
    d = distances(x, x)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :2]
    for p in new:
        ok = False
        for i in range(8):
            for j in nn[i]:
                seg = x[j] - x[i]
                lam = float(np.dot(p - x[i], seg) / np.dot(seg, seg))
                if 0 <= lam <= 1 and np.allclose(x[i] + lam * seg, p, atol=1e-5):
                    ok = True
        assert ok
    assert smote(x[:1], 10).shape == (0, DIM)
    assert smote(x, 0).shape == (0, DIM)


def test_standardize_per_domain():
    s = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    dom = np.array(["source"] * 3 + ["target"] * 3)
    z = standardize_per_domain(s, dom)
    for d in ("source", "target"):
        assert z[dom == d].mean() == pytest.approx(0, abs=1e-12)
        assert z[dom == d].std() == pytest.approx(1)


def test_select_and_table_iii_flags():
    assert [a.name for a in select(["nn", "lof"])] == ["nn", "lof"]
    with pytest.raises(InputError, match="unknown approach"):
        select(["nope"])
    assert not APPROACHES["knn-ratio"].needs_domain_labels
    assert APPROACHES["domain-std"].needs_domain_labels and not APPROACHES["domain-std"].independent
