"""ReferenceBank's estimator conventions: parameters, fitted attributes, explicit calibration."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank, calibrate


def _groups(rng: np.random.Generator, n_groups: int = 4, per: int = 5, dim: int = 6):
    X = rng.normal(size=(n_groups * per, dim)) + np.repeat(rng.normal(size=(n_groups, dim)), per, 0)
    return X, np.repeat([f"g{i}" for i in range(n_groups)], per).tolist()


def test_parameters_are_stored_under_their_own_names():
    bank = ReferenceBank(6, density="gwrp", r=0.5, norm="difference", rule="quantile", q=0.9)
    assert bank.get_params() == {
        "dim": 6,
        "metric": "cosine",
        "density": "gwrp",
        "k": 1,
        "r": 0.5,
        "norm": "difference",
        "exclude_same_group": True,
        "density_cap": None,
        "density_rule": "paper",
        "rule": "quantile",
        "q": 0.9,
        "value": None,
    }
    assert ReferenceBank(**bank.get_params()).get_params() == bank.get_params()
    with pytest.raises(InputError):
        ReferenceBank(6, rule="median")


def test_fitted_attributes_end_with_an_underscore():
    rng = np.random.default_rng(0)
    X, groups = _groups(rng)
    bank = ReferenceBank(6, density="knn", k=2)
    bank.enroll(X, group=groups, domain="source")
    assert bank.density == "knn"  # the parameter, not the per-reference array
    n = len(X)
    assert bank.ids_.tolist() == list(range(n))
    assert bank.embeddings_.shape == (n, 6) and bank.density_.shape == (n,)
    assert bank.raw_density_.shape == (n,) and bank.neighbour_ids_.shape == (n, 2)
    assert bank.groups_.tolist() == groups and set(bank.domains_) == {"source"}
    assert bank.added_at_.shape == (n,)
    for old in ("ids", "embeddings", "groups", "domains", "density_mode", "raw_density"):
        assert not hasattr(bank, old), old


def test_calibration_settings_in_the_constructor_equal_a_later_calibrate():
    rng = np.random.default_rng(1)
    X, groups = _groups(rng)
    a = ReferenceBank(6, rule="quantile", q=0.8)
    b = ReferenceBank(6)
    for bank in (a, b):
        bank.enroll(X, group=groups)
    t = b.calibrate("quantile", q=0.8)
    assert np.isfinite(t) and a.threshold_ == t
    assert (b.rule, b.q) == ("quantile", 0.8)
    c = ReferenceBank(6).set_params(rule="fixed", value=2.5)
    c.enroll(X, group=groups)
    assert c.threshold_ == 2.5 and c.value == 2.5


def test_density_parameters_change_only_while_empty():
    bank = ReferenceBank(6)
    bank.meta["model_id"] = "m"
    bank.set_params(k=3, exclude_same_group=False)
    assert bank.k == 3 and bank.references_.geometry.k == 3 and bank.meta == {"model_id": "m"}
    bank.enroll(np.random.default_rng(2).normal(size=(5, 6)))
    assert bank.neighbour_ids_.shape == (5, 3)
    with pytest.raises(InputError, match="holding references"):
        bank.set_params(k=1)
    with pytest.raises(InputError, match="unknown"):
        bank.set_params(density_mode="knn")


def test_threshold_is_cached_and_calibration_explicit(monkeypatch):
    calls = []
    real = calibrate.loo_scores

    def counting(data):
        calls.append(data.n)
        return real(data)

    monkeypatch.setattr(calibrate, "loo_scores", counting)
    rng = np.random.default_rng(3)
    X, groups = _groups(rng)
    bank = ReferenceBank(6)
    bank.enroll(X, group=groups)
    assert calls == []  # enrolling computes no calibration
    t = bank.calibrate()  # explicit: the O(N^2) work happens here
    assert calls == [len(X)]
    assert bank.threshold_ == t and bank.threshold_rule_ and bank.threshold_ == t
    assert calls == [len(X)]  # reads are free
    bank.calibrate("quantile", q=0.5)  # a new rule on unchanged references: no LOGO again
    assert calls == [len(X)]
    bank.enroll(X[:2] + 0.5, group="later")
    assert np.isnan(bank.calibrate(compute=False))  # deferred
    assert calls == [len(X)]
    assert np.isfinite(bank.threshold_)  # the cached property computes once after a change
    assert calls == [len(X), len(X) + 2]
