"""ReferenceBank behaviour: edge cases, bad input, duplicates, calibration, views."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgeasd.errors import BankError, InputError, ModelError
from edgeasd.evaluation.synthetic import domain_shift_scenario
from edgeasd.scoring import DUPLICATE_DISTANCE, RHO_EPS, ReferenceBank, calibrate

from . import reference as ref


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_empty_bank_cannot_score():
    bank = ReferenceBank(4)
    with pytest.raises(BankError, match="empty") as info:
        bank.score(np.ones(4))
    assert info.value.help


def test_single_reference_scores_plain_distance(rng):
    bank = ReferenceBank(4)
    bank.enroll(rng.normal(size=4))
    assert np.isnan(bank.raw_density_[0])
    assert bank.density_[0] == 1.0  # neutral value under ratio: no neighbour to normalize by
    q = rng.normal(size=4)
    expected = ref.distances(q[None], bank.embeddings_, "cosine")[0, 0]
    np.testing.assert_allclose(bank.score(q), [expected], rtol=1e-6)
    # the auto rule with no group to calibrate on: uncalibrated, no made-up constant
    assert np.isnan(bank.threshold_)
    assert "uncalibrated" in bank.threshold_rule_


def test_single_group_warns_that_scores_are_unnormalized(rng, caplog):
    bank = ReferenceBank(4)  # exclude_same_group=True by default
    with caplog.at_level(logging.WARNING, logger="edgeasd.scoring.bank"):
        bank.enroll(rng.normal(size=(5, 4)), group="one-recording")
    assert "outside its own group" in caplog.text
    assert "group=" not in caplog.text and "exclude_same_group" not in caplog.text  # CLI users
    np.testing.assert_array_equal(bank.density_, 1.0)
    # ... and the fixed rule's default 3 is out of reach of cosine distances (at most 1); the
    # default rule (auto) leaves a single group uncalibrated (NaN) since issue 9
    assert bank.score_bound_ == 1.0
    assert np.isnan(bank.threshold_)
    bank.set_params(rule="fixed")
    with caplog.at_level(logging.WARNING, logger="edgeasd.scoring.bank"):
        assert bank.threshold_ == 3.0
    assert "can never be exceeded" in caplog.text


def test_enroll_without_groups_treats_each_row_as_its_own_group(rng, caplog):
    """The paper's formula: every other reference may be a density neighbour."""
    base = np.array([1.0, 0.5, -0.5, 0.2])
    X = base + 0.05 * rng.normal(size=(8, 4))  # a tight cluster of normal embeddings
    with caplog.at_level(logging.WARNING, logger="edgeasd.scoring.bank"):
        bank = ReferenceBank(4)  # exclude_same_group=True
        bank.enroll(X)
        assert len(set(bank.groups_)) == 8
        paper = ReferenceBank(4, exclude_same_group=False)
        paper.enroll(X, group="all")
        np.testing.assert_allclose(bank.density_, paper.density_, rtol=1e-12)
        D = ref.distances(bank.embeddings_, bank.embeddings_, "cosine")
        np.fill_diagonal(D, np.inf)
        np.testing.assert_allclose(bank.density_, D.min(axis=1), rtol=1e-6)  # k = 1
        assert np.isfinite(bank.threshold_) and bank.threshold_ < bank.score_bound_
    assert caplog.text == ""  # no false warning
    assert bank.score(-base)[0] > bank.threshold_  # such a bank can alert


def test_isolated_reference_takes_median_density(rng):
    bank = ReferenceBank(4, exclude_same_group=True)
    bank.enroll(rng.normal(size=(3, 4)), group="a")
    bank.enroll(rng.normal(size=(3, 4)), group="b")
    bank.enroll(rng.normal(size=(1, 4)), group="c")
    raw = bank.raw_density_
    assert not np.isnan(raw).any()  # every group sees the others
    lone = ReferenceBank(4, exclude_same_group=True)
    lone.enroll(rng.normal(size=(3, 4)), group="only")
    assert np.isnan(lone.raw_density_).all()
    np.testing.assert_array_equal(lone.density_, 1.0)


def test_k_at_least_n_uses_all_others(rng):
    X = rng.normal(size=(5, 3))
    big = ReferenceBank(3, k=50, exclude_same_group=False)
    big.enroll(X)
    D = ref.distances(big.embeddings_, big.embeddings_, "cosine")
    want = (D.sum(axis=1)) / 4  # mean over the N-1 = 4 others (self distance is 0)
    np.testing.assert_allclose(big.density_, want, rtol=1e-6)


def test_gwrp_r0_is_knn1_and_r1_is_global_mean(rng):
    X = rng.normal(size=(12, 3))
    banks = {}
    for name, kw in {
        "knn1": {},
        "r0": {"density": "gwrp", "r": 0.0},
        "r1": {"density": "gwrp", "r": 1.0},
        "knnN": {"k": 11},
    }.items():
        banks[name] = ReferenceBank(3, exclude_same_group=False, **kw)
        banks[name].enroll(X)
    np.testing.assert_allclose(banks["r0"].density_, banks["knn1"].density_, rtol=1e-12)
    np.testing.assert_allclose(banks["r1"].density_, banks["knnN"].density_, rtol=1e-12)


def test_self_is_excluded_by_id_even_with_exact_duplicates(rng, caplog):
    X = rng.normal(size=(6, 4))
    bank = ReferenceBank(4, exclude_same_group=False)
    bank.enroll(X)
    with caplog.at_level(logging.WARNING, logger="edgeasd.scoring.bank"):
        new = bank.enroll(np.vstack([X[2], X[2]]))  # two more copies of reference 2
    nb = bank.neighbour_ids_[:, 0]
    assert np.all(nb != bank.ids_)  # never its own neighbour
    copies = {2, *new.tolist()}
    for i in copies:
        assert nb[np.searchsorted(bank.ids_, i)] in copies - {i}
    dup = np.isin(bank.ids_, list(copies))
    np.testing.assert_array_equal(bank.density_[dup], RHO_EPS)  # A = 0 exactly, floored
    pairs = [(a, b) for a, b, _ in bank.last_enroll_report_["duplicates"]]
    # each row its own group: appended one by one, reported as one append would (by the
    # earlier reference, then the new one)
    assert pairs == [(new[0], 2), (new[1], 2), (new[1], new[0])]
    assert bank.last_enroll_report_["enrolled"] == 2
    assert all(d <= DUPLICATE_DISTANCE for *_, d in bank.last_enroll_report_["duplicates"])
    assert "duplicate" in caplog.text
    assert np.isfinite(bank.score(X[2])).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((2, 5)), "dimension 5"),
        (np.array([[1.0, np.nan, 0, 0]]), "NaN"),
        (np.array([[1.0, np.inf, 0, 0]]), "NaN or infinite"),
        (np.zeros((1, 4)), "zero vector"),
        (np.empty((0, 4)), "empty batch"),
        (np.ones((2, 2, 4)), "shape"),
        ([["a", "b", "c", "d"]], "not a numeric array"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_half_enrolled(rng, bad, match):
    bank = ReferenceBank(4)
    good = rng.normal(size=(3, 4))
    bank.enroll(good)
    before = (bank.ids_, bank.density_, bank.embeddings_)
    mixable = isinstance(bad, np.ndarray) and bad.ndim == 2 and bad.shape[0] and bad.shape[1] == 4
    # bad rows after good ones: the good ones must not be enrolled either
    batch = np.vstack([rng.normal(size=(2, 4)), bad]) if mixable else bad
    with pytest.raises(InputError, match=match):
        bank.enroll(batch)
    with pytest.raises(ValueError):
        bank.score(batch)
    for a, b in zip(before, (bank.ids_, bank.density_, bank.embeddings_), strict=True):
        np.testing.assert_array_equal(a, b)
    assert bank.enroll(rng.normal(size=(1, 4)))[0] == 3  # ids continue normally


def test_scale_limits_per_metric():
    huge = np.array([[1e300, -1e300, 0.0, 2e300]])
    cos = ReferenceBank(4)
    cos.enroll(huge)  # direction only: any finite scale is fine
    np.testing.assert_allclose(cos.embeddings_, [[1, -1, 0, 2]] / np.sqrt(6), rtol=1e-6)
    euc = ReferenceBank(4, metric="euclidean")
    with pytest.raises(InputError, match="float32 range"):
        euc.enroll(np.full((1, 4), 1e39))
    assert len(euc) == 0


def test_bad_labels_and_constructor_arguments(rng):
    bank = ReferenceBank(4)
    with pytest.raises(InputError, match="2 labels for 3"):
        bank.enroll(rng.normal(size=(3, 4)), group=["a", "b"])
    with pytest.raises(InputError, match="domain"):
        bank.enroll(rng.normal(size=(1, 4)), domain=1.5)
    assert len(bank) == 0
    for kw in (
        {"metric": "manhattan"},
        {"density": "lof"},
        {"k": 0},
        {"density": "gwrp"},
        {"density": "gwrp", "r": 1.5},
        {"norm": "zscore"},
    ):
        with pytest.raises(InputError):
            ReferenceBank(4, **kw)
    with pytest.raises(InputError, match="not in the bank"):
        bank.remove([7])


def test_cosine_rows_are_normalized_and_views_align(rng):
    bank = ReferenceBank(4)
    X = rng.normal(size=(4, 4)) * 10
    ids = bank.enroll(X, domain=["source", "source", "target", "target"], group=7)
    np.testing.assert_allclose(bank.embeddings_, X / np.linalg.norm(X, axis=1)[:, None], rtol=1e-6)
    assert bank.domains_.tolist() == ["source", "source", "target", "target"]
    assert bank.groups_.tolist() == ["7"] * 4
    assert bank.ids_.tolist() == ids.tolist() == [0, 1, 2, 3]
    assert bank.added_at_.shape == (4,) and len(bank) == 4
    bank.remove([1])
    assert bank.ids_.tolist() == [0, 2, 3] and bank.domains_.tolist()[0] == "source"
    s = bank.score(X[0])
    assert s.shape == (1,)


def test_calibration_rules_and_refresh(rng):
    sc = domain_shift_scenario(seed=1, dim=16, n_source=120, n_target=10)
    bank = ReferenceBank(16)
    bank.enroll(sc["train"], domain=sc["train_domains"], group=sc["train_groups"])
    loo = bank.loo_scores_
    assert loo.shape == (len(bank),) and np.isfinite(loo).all()
    q = bank.calibrate("quantile", q=0.9)
    assert q == pytest.approx(np.quantile(loo, 0.9))
    assert "quantile" in bank.threshold_rule_
    g = bank.calibrate("gamma", q=0.9)
    assert np.isfinite(g) and "gamma" in bank.threshold_rule_
    assert bank.calibrate("fixed", value=5.0) == 5.0
    auto = bank.calibrate("auto", q=0.95)
    forward = bank.forward_scores_
    # value is kept as the auto floor; auto ignores q (forward-chaining maximum x margin)
    assert auto == max(5.0, calibrate.FORWARD_MARGIN * np.nanmax(forward))
    # scikit-learn's meaning: higher = more normal; negative decision = anomalous
    np.testing.assert_allclose(bank.score_samples(sc["test"][:3]), -bank.score(sc["test"][:3]))
    np.testing.assert_allclose(
        bank.decision_function(sc["test"][:3]), auto - bank.score(sc["test"][:3])
    )
    assert bank.offset_ == -auto
    bank.calibrate("quantile", q=0.95)
    before = bank.threshold_
    bank.enroll(sc["anomalies"][:20], group="odd-recording")  # far-off data widens the spread
    assert bank.loo_scores_.shape == (len(bank),)
    assert bank.threshold_ != before  # refreshed automatically
    with pytest.raises(InputError):
        bank.calibrate("median")
    with pytest.raises(InputError):
        bank.calibrate("quantile", q=1.5)


def test_default_rule_keeps_false_alarms_low_in_both_domains():
    """The default (exclude_same_group, auto) on a 990 source / 10 target bank."""
    for seed in range(2):
        sc = domain_shift_scenario(seed=seed, dim=32)
        bank = ReferenceBank(32)
        bank.enroll(sc["train"], domain=sc["train_domains"], group=sc["train_groups"])
        s = bank.score(sc["test"])
        dom = np.array(sc["test_domains"])
        for d in ("source", "target"):
            assert np.mean(s[dom == d] > bank.threshold_) <= 0.05
        assert np.mean(bank.score(sc["anomalies"]) > bank.threshold_) >= 0.9


def test_claim_model(rng):
    bank = ReferenceBank(4)
    bank.claim_model("fan-1:abc")
    assert bank.meta["model_id"] == "fan-1:abc"
    bank.claim_model("fan-1:abc")
    with pytest.raises(ModelError, match="fan-1:abc") as info:
        bank.claim_model("fan-2:def")
    assert "fan-2:def" in info.value.message and "bank rebuild" in info.value.help


def test_duplicate_warning_counts_the_request_not_the_pairs(caplog):
    bank = ReferenceBank(4)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    bank.enroll(np.tile(x, (9, 1)), group="a")  # 9 identical references
    caplog.clear()
    bank.enroll(np.tile(x, (2, 1)), group="b")  # 2 windows, each a twin of all 9 (19 pairs)
    assert len(bank.last_enroll_report_["duplicates"]) == 19
    assert "2 of 2 enrolled embedding(s) duplicate 10 earlier reference(s)" in caplog.text
