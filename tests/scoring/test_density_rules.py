"""Density rules (issue 17): the paper's, the global cap, and the per-condition rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank, calibrate
from edgeasd.scoring.density_rules import (
    ESTABLISHED_GROUPS,
    LONE_SPREAD_FACTOR,
    SPREAD_FACTOR,
)
from edgeasd.scoring.references import Geometry
from edgeasd.scoring.serialize import to_state
from edgeasd.scoring.store import encode, load_bank, save_bank


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(17)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _spread(groups: list[np.ndarray]) -> float:
    """Plain reference: median over groups of the median nearest-other-window distance."""
    meds = []
    for X in groups:
        Y = _unit(X)
        d = [min(0.5 * (1 - Y[i] @ Y[j]) for j in range(len(Y)) if j != i) for i in range(len(Y))]
        meds.append(np.median(d))
    return float(np.median(meds))


def _drift_bank(
    rng, target_groups: int, target_size: int = 4, rule: str = "condition", version: int = 2
):
    """A source condition of 6 groups of 3 windows, and a far target condition."""
    src_centre, tgt_centre = rng.normal(size=8), rng.normal(size=8)
    src = [src_centre + 0.1 * rng.normal(size=(3, 8)) for _ in range(6)]
    tgt = [tgt_centre + 0.2 * rng.normal(size=(target_size, 8)) for _ in range(target_groups)]
    banks = {}
    for name in ("paper", rule):
        bank = ReferenceBank(8, density_rule=name)
        if name == "condition" and version != 2:
            bank.references_.geometry = Geometry(8, density_rule=name, condition_version=version)
        for i, X in enumerate(src):
            bank.enroll(X, domain="source", group=f"s{i}")
        for i, X in enumerate(tgt):
            bank.enroll(X, domain="target", group=f"t{i}")
        banks[name] = bank
    return banks["paper"], banks[rule], src, tgt


def test_a_lone_group_takes_its_own_spread_times_the_established_ratio(rng):
    paper, cond, src, tgt = _drift_bank(rng, 1)
    raw, dom = paper.density_, paper.domains_
    src_rows = dom == "source"
    # the paper's rule: the lone target group's density is its distance to the source
    assert np.median(raw[~src_rows]) > 10 * np.median(raw[src_rows])
    ratio = np.median(raw[src_rows] / _spread(src))
    # one recording says nothing of how far its condition's later ones lie: the lone
    # group's factor (2.25) is larger than that of 2-3 groups (1.5)
    want = LONE_SPREAD_FACTOR * ratio * _spread(tgt)
    np.testing.assert_allclose(cond.density_[~src_rows], want, rtol=1e-5)  # float32 storage
    # the established condition keeps the paper's densities, bit for bit
    np.testing.assert_array_equal(cond.density_[src_rows], raw[src_rows])
    # a window beside the lone group is no longer divided by its distance to the source
    q = tgt[0][:1] + 0.05 * rng.normal(size=(1, 8))
    assert cond.score(q)[0] > 5 * paper.score(q)[0]


def test_the_weight_falls_with_the_groups_and_reaches_the_papers_rule(rng):
    paper, cond, src, tgt = _drift_bank(rng, 2)
    raw, t = paper.density_, paper.domains_ == "target"
    ratio = np.median(raw[~t] / _spread(src))
    est = SPREAD_FACTOR * ratio * _spread(tgt)
    a = (ESTABLISHED_GROUPS - 2) / (ESTABLISHED_GROUPS - 1)
    np.testing.assert_allclose(
        cond.density_[t], raw[t] ** (1 - a) * est**a, rtol=1e-5
    )  # float32 storage
    paper, cond, _, _ = _drift_bank(rng, ESTABLISHED_GROUPS)
    np.testing.assert_array_equal(cond.density_, paper.density_)


def test_one_window_groups_keep_the_papers_rule(rng):
    """Without windows of its own to measure, a young condition is left to the paper's rule."""
    paper, cond, _, _ = _drift_bank(rng, 2, target_size=1)
    np.testing.assert_array_equal(cond.density_, paper.density_)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8),
)
def test_a_bank_of_one_condition_is_never_changed(seed, sizes):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(sum(sizes), 5))
    groups = np.repeat(np.arange(len(sizes)), sizes).tolist()
    paper, cond = ReferenceBank(5), ReferenceBank(5, density_rule="condition")
    for bank in (paper, cond):
        bank.enroll(X, domain="only", group=groups)
    np.testing.assert_array_equal(cond.density_, paper.density_)


def test_logo_scores_keep_the_papers_where_no_condition_is_young(rng):
    paper, cond, _, _ = _drift_bank(rng, ESTABLISHED_GROUPS)
    want = calibrate.loo_scores(paper.references_)
    np.testing.assert_array_equal(calibrate.loo_scores(cond.references_), want)
    # a lone group: the rest is scored against the rule's densities of that group
    paper, cond, _, _ = _drift_bank(rng, 1)
    got = calibrate.loo_scores(cond.references_)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(
        got[cond.domains_ == "target"],
        calibrate.loo_scores(paper.references_)[paper.domains_ == "target"],
    )  # its own left-out scores do not depend on its densities


def test_the_rule_is_kept_in_the_bank_file_and_an_old_bank_keeps_its_rule(rng, tmp_path):
    _, cond, _, _ = _drift_bank(rng, 1)
    save_bank(cond, tmp_path / "bank")
    loaded = load_bank(tmp_path / "bank")
    assert loaded.density_rule == "condition"
    np.testing.assert_array_equal(loaded.density_, cond.density_)
    # a header written before rules had names: the cap it stored is its rule
    assert Geometry(4, density_cap=1.5).density_rule == "cap"
    assert Geometry(4).density_rule == "paper"
    capped = ReferenceBank(4, density_cap=1.5)
    assert capped.density_rule == "cap"
    assert capped.set_params(density_cap=None).density_rule == "paper"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"density_rule": "wide"}, "density_rule must be one of paper, cap, condition"),
        ({"density_rule": "cap"}, "needs a density_cap"),
    ],
)
def test_bad_rules_are_refused_by_name(kwargs, words):
    with pytest.raises(InputError, match=words):
        ReferenceBank(4, **kwargs)


def _plain_condition_rule(raw, src, tgt, version=2):
    """Plain reference of the ``condition`` rule on a bank of one established condition
    (``src``: its groups) and one young one (``tgt``: 1-3 groups of >= 2 windows), for the
    young condition's rows, in enrollment order."""
    n_src = sum(len(X) for X in src)
    ratio = np.median(raw[:n_src] / _spread(src))
    g = len(tgt)
    factor = LONE_SPREAD_FACTOR if (g == 1 and version >= 2) else SPREAD_FACTOR
    est = factor * ratio * _spread(tgt)
    a = (ESTABLISHED_GROUPS - g) / (ESTABLISHED_GROUPS - 1)
    return np.exp((1 - a) * np.log(raw[n_src:]) + a * np.log(est))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    src_sizes=st.lists(st.integers(2, 4), min_size=ESTABLISHED_GROUPS, max_size=7),
    tgt_sizes=st.lists(st.integers(2, 6), min_size=1, max_size=ESTABLISHED_GROUPS - 1),
    version=st.sampled_from([1, 2]),
)
def test_young_densities_match_a_plain_reference(seed, src_sizes, tgt_sizes, version):
    rng = np.random.default_rng(seed)
    src_c, tgt_c = rng.normal(size=8), rng.normal(size=8)
    src = [src_c + 0.1 * rng.normal(size=(k, 8)) for k in src_sizes]
    tgt = [tgt_c + rng.uniform(0.05, 0.4) * rng.normal(size=(k, 8)) for k in tgt_sizes]
    paper = ReferenceBank(8)
    cond = ReferenceBank(8, density_rule="condition")
    cond.references_.geometry = Geometry(8, density_rule="condition", condition_version=version)
    for bank in (paper, cond):
        for i, X in enumerate(src):
            bank.enroll(X, domain="source", group=f"s{i}")
        for i, X in enumerate(tgt):
            bank.enroll(X, domain="target", group=f"t{i}")
    n_src = sum(src_sizes)
    want = _plain_condition_rule(paper.density_, src, tgt, version)
    np.testing.assert_allclose(cond.density_[n_src:], want, rtol=1e-5)  # float32 storage
    np.testing.assert_array_equal(cond.density_[:n_src], paper.density_[:n_src])


def test_a_bank_file_without_a_rule_version_keeps_the_first_versions_densities(rng, tmp_path):
    """A ``condition`` bank saved before the lone-group factor keeps its densities on load,
    and its next enrollment too; a new bank gets the current version."""
    _, old, src, tgt = _drift_bank(rng, 1, version=1)
    paper, new, _, _ = _drift_bank(np.random.default_rng(17), 1)
    t = old.domains_ == "target"
    ratio = np.median(paper.density_[~t] / _spread(src))
    np.testing.assert_allclose(
        old.density_[t], SPREAD_FACTOR * ratio * _spread(tgt), rtol=1e-5
    )  # the first version's factor
    np.testing.assert_allclose(
        new.density_[t], LONE_SPREAD_FACTOR / SPREAD_FACTOR * old.density_[t], rtol=1e-5
    )  # the same recordings under the current version
    header, arrays = to_state(old)
    del header["params"]["condition_version"]  # as the first version wrote it
    (tmp_path / "bank").write_bytes(encode(header, arrays))
    loaded = load_bank(tmp_path / "bank", spare=True)
    assert loaded.references_.geometry.condition_version == 1
    np.testing.assert_array_equal(loaded.density_, old.density_)
    loaded.enroll(tgt[0][:2] + 0.01, domain="elsewhere", group="e0")
    old.enroll(tgt[0][:2] + 0.01, domain="elsewhere", group="e0")
    np.testing.assert_array_equal(loaded.density_, old.density_)
    # a bank built now, saved and loaded, keeps the current version
    save_bank(new, tmp_path / "new")
    assert load_bank(tmp_path / "new").references_.geometry.condition_version == 2


def test_an_unknown_rule_version_is_refused_by_name():
    with pytest.raises(InputError, match="condition_version must be one of 1, 2"):
        Geometry(4, density_rule="condition", condition_version=3)
