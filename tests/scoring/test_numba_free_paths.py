"""The numpy paths that keep numba out of bank reading and one-window scoring.

Each equals its numba counterpart bit for bit (hypothesis), and a fresh process that loads
a bank and scores one window never imports numba.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeasd.scoring import ReferenceBank, kernels, save_bank
from edgeasd.scoring.density import base_weights
from edgeasd.scoring.density import rho_from_lists as rho_numpy
from edgeasd.scoring.references import score_one


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 300),
    metric=st.sampled_from([0, 1]),
    norm=st.sampled_from([0, 1, 2]),
    dup=st.booleans(),
)
def test_single_query_numpy_path_equals_the_batch_kernel(seed, n, metric, norm, dup):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 16)).astype(np.float32)
    q = y[rng.integers(n)].copy() if dup else rng.normal(size=16).astype(np.float32)
    if metric == 0:
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        q /= np.linalg.norm(q)
    g = y @ q
    qsq = float(np.dot(q.astype(np.float64), q))
    ysq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    w = rng.uniform(0.01, 3.0, n)
    w[rng.integers(n)] = w[0]  # ties in w, and in scores with duplicated rows
    best, arg = np.full(1, np.inf), np.full(1, -1)
    kernels.score_from_dots(g[None, :], np.array([qsq]), ysq, w, 0, metric, norm, best, arg)
    s, i = score_one(g, qsq, ysq, w, metric, norm)
    assert (s, i) == (best[0], arg[0])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 50),
    width=st.integers(1, 70),
    r=st.sampled_from([None, 0.3, 0.9]),
)
def test_numpy_densities_equal_the_numba_kernel(seed, n, width, r):
    rng = np.random.default_rng(seed)
    nb_d = np.sort(rng.uniform(0, 1, (n, width)), axis=1)
    nb_n = rng.integers(0, width + 1, n)
    nb_d[np.arange(width)[None, :] >= nb_n[:, None]] = np.inf
    base = base_weights("knn" if r is None else "gwrp", width, r)
    want = kernels.rho_from_lists(nb_d, nb_n, n, base)
    np.testing.assert_array_equal(rho_numpy(nb_d, nb_n, base), want)


def test_loading_a_bank_and_scoring_one_window_never_imports_numba(tmp_path):
    rng = np.random.default_rng(0)
    bank = ReferenceBank(32, density="gwrp", r=0.5)
    bank.enroll(rng.normal(size=(40, 32)), group=[i // 8 for i in range(40)])
    save_bank(bank, tmp_path / "bank")
    q = rng.normal(size=32)
    want = bank.score(q)[0]
    code = (
        "import sys, numpy as np\n"
        "from edgeasd.scoring import load_bank\n"
        f"bank = load_bank({str(tmp_path / 'bank')!r})\n"
        f"s = bank.score(np.array({q.tolist()!r}))[0]\n"
        "print(repr(float(s)), 'numba' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [repr(float(want)), "False"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 200),
    dim=st.sampled_from([1, 7, 64, 512]),
    norm=st.sampled_from(["ratio", "difference", "none"]),
)
def test_one_pass_kernel_matches_plain_numpy(monkeypatch, seed, n, dim, norm):
    """Large banks score one query in one numba pass: the numpy formula's minimum."""
    from edgeasd.scoring import references

    monkeypatch.setattr(references, "ONE_PASS_MIN", 1)  # same value at every example
    rng = np.random.default_rng(seed)
    bank = ReferenceBank(dim, norm=norm, exclude_same_group=False)
    bank.enroll(rng.normal(size=(n, dim)))
    q = rng.normal(size=dim)
    s, nearest = bank.score(q, return_nearest=True)
    y = bank.embeddings_.astype(np.float64)
    u = q / np.linalg.norm(q)
    d = np.minimum(0.25 * np.maximum(2.0 - 2.0 * (y @ u), 0.0), 1.0)
    rho = bank.density_
    want = {"ratio": d / rho, "difference": d - rho, "none": d}[norm]
    tol = 1e-5 * (1.0 + np.abs(want).max()) / (rho.min() if norm == "ratio" else 1.0)
    assert abs(s[0] - want.min()) <= tol
    assert want[np.flatnonzero(bank.ids_ == nearest[0])[0]] <= want.min() + 2 * tol
