"""`benchmarks/bench_spread.py`: the nuisance projection removes what groups differ by."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_spread as bench


def _grouped(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8 groups x 5 windows in 2 conditions, dim 16: groups differ along axes 0 and 1 only,
    the conditions along axis 2, windows within a group by 1e-3 noise."""
    groups = np.repeat(np.arange(8), 5)
    conditions = np.where(groups < 4, "a", "b")
    x = np.zeros((40, 16))
    x[:, 3] = 1.0
    x[:, 2] = np.where(conditions == "a", 0.5, -0.5)
    offsets = rng.normal(size=(8, 2))
    x[:, :2] = offsets[groups] * np.array([3.0, 1.0])
    x += rng.normal(scale=1e-3, size=x.shape)
    return x, groups, conditions


def test_the_basis_spans_the_directions_groups_differ_by_not_the_conditions():
    x, groups, conditions = _grouped(np.random.default_rng(0))
    u = bench.nuisance_basis(x, groups, conditions, 2)
    assert u.shape == (16, 2)
    np.testing.assert_allclose(u.T @ u, np.eye(2), atol=1e-9)
    # the plane of axes 0 and 1 holds the basis: its columns' mass there is ~1
    np.testing.assert_allclose(np.sum(u[:2] ** 2, axis=0), [1.0, 1.0], atol=1e-4)
    assert np.all(np.abs(u[2]) < 1e-3)  # the condition axis is not removed
    first = bench.nuisance_basis(x, groups, conditions, 1)[:, 0]
    assert abs(first[0]) > abs(first[1])  # axis 0 varies 3x more between groups


def test_projection_removes_the_basis_and_renormalizes():
    x, groups, conditions = _grouped(np.random.default_rng(1))
    u = bench.nuisance_basis(x, groups, conditions, 2)
    y = bench.project(x, u)
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-6)
    assert np.max(np.abs(y[:, :2])) < 1e-3  # what the groups differed by is gone
    # what is left is the condition and the constant axis, as in the input
    np.testing.assert_allclose(y[:, 2] / y[:, 3], np.where(conditions == "a", 0.5, -0.5), atol=1e-2)


def test_rank_zero_leaves_unit_rows_unchanged():
    x, groups, conditions = _grouped(np.random.default_rng(2))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    u = bench.nuisance_basis(x, groups, conditions, 0)
    assert u.shape == (16, 0)
    np.testing.assert_allclose(bench.project(x, u), x, atol=1e-6)
