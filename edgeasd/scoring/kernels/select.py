"""Neighbour lists at BLAS speed: exact candidates filtered from a float32 GEMM block.

The density build needs, for each reference, the ``L`` nearest eligible others by the
*exact* pairwise distance (:func:`exact_ss`, the one arithmetic every neighbour list is
made of, so an incremental build equals a from-scratch one bit for bit). Computing that
for every pair costs ``N² · dim`` scalar operations. Instead the caller computes a block of
inner products ``G = Y[rows] @ Y[cols].T`` with float32 BLAS, and :func:`merge_block` uses
them as *bounds*:

``ss_g = |x|² + |y|² - 2 G`` differs from the exact squared difference ``ss`` by at most
``E = 2 γ_d |x| |y| + γ_{d+2} (ss_g + 2 γ_d |x| |y|)`` (γ_n = n u / (1 - n u), u = 2⁻²⁴:
the forward error bound of any float32 summation of ``n`` terms, in any order, with or
without fused multiply-adds; the second term is the exact kernel's own rounding).
:data:`SAFETY` multiplies it. Per row, a first pass over the block takes the ``L``-th
smallest upper bound ``ss_g + E`` (together with the exact distances already in the
list); only candidates whose lower bound ``ss_g - E`` does not exceed it can enter, and
only those get the exact distance and the sorted insertion. Every neighbour the exact
computation would keep is among them, so the result is exactly the one of
:func:`~edgeasd.scoring.kernels.neighbours.insert_candidates` over exact distances.

Pairs within ``close`` (the duplicate report) are found the same way.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgeasd.scoring.kernels.neighbours import _before, _eligible, _insert, _tail
from edgeasd.scoring.kernels.score import COSINE, _finish

#: Factor on the rounding-error bound (see module docstring).
SAFETY = 2.0
_U32 = 2.0**-24


def gamma(n: int) -> float:
    """``n u / (1 - n u)`` for float32 (u = 2⁻²⁴): error bound of an ``n``-term sum."""
    return n * _U32 / (1.0 - n * _U32)


@njit(cache=True)
def exact_ss(a: np.ndarray, i: int, b: np.ndarray, j: int) -> float:
    """``sum_k (a[i, k] - b[j, k]) ** 2`` in float32, in a fixed order.

    Eight float32 accumulators over ``k mod 8`` (no fast-math: the order is what the
    code says), summed pairwise. Symmetric bit for bit: ``(a - b)² == (b - a)²``.

    Parameters
    ----------
    a : (na, dim) float32
    i : int
    b : (nb, dim) float32
    j : int

    Returns
    -------
    float
        The float32 sum, as a Python float.
    """
    dim = a.shape[1]
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    s4 = np.float32(0.0)
    s5 = np.float32(0.0)
    s6 = np.float32(0.0)
    s7 = np.float32(0.0)
    k = 0
    while k + 8 <= dim:
        t0 = a[i, k] - b[j, k]
        t1 = a[i, k + 1] - b[j, k + 1]
        t2 = a[i, k + 2] - b[j, k + 2]
        t3 = a[i, k + 3] - b[j, k + 3]
        t4 = a[i, k + 4] - b[j, k + 4]
        t5 = a[i, k + 5] - b[j, k + 5]
        t6 = a[i, k + 6] - b[j, k + 6]
        t7 = a[i, k + 7] - b[j, k + 7]
        s0 += t0 * t0
        s1 += t1 * t1
        s2 += t2 * t2
        s3 += t3 * t3
        s4 += t4 * t4
        s5 += t5 * t5
        s6 += t6 * t6
        s7 += t7 * t7
        k += 8
    while k < dim:
        t = a[i, k] - b[j, k]
        s0 += t * t
        k += 1
    return np.float64(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)))


@njit(cache=True)
def exact_dist(a: np.ndarray, b: np.ndarray, metric: int) -> np.ndarray:
    """Exact distances (:func:`exact_ss`) of every row of ``a`` to every row of ``b``.

    Parameters
    ----------
    a : (na, dim) float32
    b : (nb, dim) float32
    metric : int

    Returns
    -------
    (na, nb) float64
    """
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = _finish(exact_ss(a, i, b, j), metric)
    return out


@njit(cache=True, fastmath=True)
def _dot_rows(y: np.ndarray, p: int, q: int) -> float:
    """``<y[p], y[q]>`` in float32: one vectorized loop whose order depends only on ``dim``."""
    acc = np.float32(0.0)
    for k in range(y.shape[1]):
        acc += y[p, k] * y[q, k]
    return acc


@njit(cache=True)
def thin_dots(y: np.ndarray, a: int, b: int, c0: int, c1: int, out: np.ndarray) -> None:
    """``out[i - a, j - c0] = <y[i], y[j]>`` (float32) for a few rows against many.

    The product of a thin block (an enrollment of a few rows against the bank): each bank
    row is read once and meets every new row while it is in cache, at the speed of reading
    the bank (BLAS packs the bank's block first: 2.4x slower for 6 x 4096 x 512,
    ``benchmarks/bench_costs.py``). Each entry is one call of the same loop, so it does not
    depend on the block's shape or position: a replay that appends the same rows gets the
    same bits. Its rounding is within the bound :func:`merge_block` assumes (any order).

    Parameters
    ----------
    y : (cap, dim) float32
    a, b : int
        New rows ``a .. b-1``.
    c0, c1 : int
        Candidate rows ``c0 .. c1-1``.
    out : (b - a, c1 - c0) float32
    """
    for j in range(c0, c1):
        for i in range(a, b):
            out[i - a, j - c0] = _dot_rows(y, i, j)


@njit(cache=True)
def _ss_of(d: float, metric: int) -> float:
    """An upper bound of the squared difference behind distance ``d`` (inf if clipped)."""
    if metric == COSINE:
        if d >= 1.0:
            return np.inf
        return 4.0 * d * (1.0 + 1e-12)
    return 16.0 * d * d * (1.0 + 1e-12)


@njit(cache=True, inline="always")
def _err(ssg: float, e1: float, xs: float, ys: float, gam1: float) -> float:
    """Bound of ``|ss_g - exact_ss|``: BLAS error ``e1``, the exact kernel's own, float64."""
    return e1 + gam1 * (max(ssg, 0.0) + e1) + 4e-16 * (xs + ys) + 1e-300


@njit(cache=True)
def merge_block(
    g: np.ndarray,
    y: np.ndarray,
    norms: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    ids: np.ndarray,
    grp: np.ndarray,
    exclude_same_group: bool,
    metric: int,
    gam: np.ndarray,
    nb_id: np.ndarray,
    nb_d: np.ndarray,
    nb_n: np.ndarray,
    close: float,
    pairs: np.ndarray,
    n_pairs: np.ndarray,
) -> None:
    """Merge the exact nearest of the candidates ``cols`` into the lists of ``rows``.

    Parameters
    ----------
    g : (r, c) float32
        ``y[rows] @ y[cols].T`` from BLAS.
    y : (cap, dim) float32
        Reference storage (positions index it).
    norms : (cap,) float64
        ``|y_p|`` of every position (float64 from the float32 rows).
    rows : (r,) int64
        Positions whose lists receive candidates.
    cols : (c,) int64
        Positions of the candidates.
    ids, grp : (cap,) int64
        Ids and group codes by position.
    exclude_same_group : bool
    metric : int
    gam : (2,) float64
        ``SAFETY * gamma(dim)`` and ``SAFETY * gamma(dim + 2)``.
    nb_id, nb_d, nb_n : list arrays (cap, L), (cap, L), (cap,)
        Updated in place, exactly as by ``insert_candidates`` over exact distances.
    close : float
        Report pairs (row, col) with ``cols[j] < rows[i]`` and exact distance <= close
        (negative: report none).
    pairs : (P, 3) float64
        Receives (row position, col position, distance) of reported pairs.
    n_pairs : (1,) int64
        Pairs found so far (may exceed P: only the first P are stored).
    """
    width = nb_id.shape[1]
    bound = np.empty(width, dtype=np.float64)
    close_ss = _ss_of(close, metric) if close >= 0.0 else -1.0
    clip = 4.0 * (1.0 - 1e-6)  # cosine distances clip at 1 (ss >= 4): ties by id there
    for i in range(rows.shape[0]):
        p = rows[i]
        xs = norms[p] * norms[p]
        cnt = nb_n[p]
        for s in range(width):
            bound[s] = _ss_of(nb_d[p, s], metric) if s < cnt else np.inf
        # pass 1: the L-th smallest upper bound over the list and this block
        for j in range(cols.shape[0]):
            q = cols[j]
            if not _eligible(ids[p], grp[p], ids[q], grp[q], exclude_same_group):
                continue
            e1 = gam[0] * norms[p] * norms[q]
            ssg = xs + norms[q] * norms[q] - 2.0 * np.float64(g[i, j])
            hi = ssg + _err(ssg, e1, xs, norms[q] * norms[q], gam[1])
            if hi < bound[width - 1]:
                pos = width - 1
                while pos > 0 and bound[pos - 1] > hi:
                    bound[pos] = bound[pos - 1]
                    pos -= 1
                bound[pos] = hi
        # relative slack: distinct ss one rounding apart may give equal distances (ties by id)
        limit = bound[width - 1] * (1.0 + 1e-9)
        if metric == COSINE and limit >= clip:
            limit = np.inf
        # pass 2: exact distances of the candidates that can enter
        wd, wid = _tail(nb_id, nb_d, p, cnt)
        for j in range(cols.shape[0]):
            q = cols[j]
            e1 = gam[0] * norms[p] * norms[q]
            ssg = xs + norms[q] * norms[q] - 2.0 * np.float64(g[i, j])
            lo = ssg - _err(ssg, e1, xs, norms[q] * norms[q], gam[1])
            ok = _eligible(ids[p], grp[p], ids[q], grp[q], exclude_same_group)
            want = ok and lo <= limit
            report = close_ss >= 0.0 and q < p and lo <= close_ss
            if not (want or report):
                continue
            d = _finish(exact_ss(y, p, y, q), metric)
            if report and d <= close:
                k = n_pairs[0]
                if k < pairs.shape[0]:
                    pairs[k, 0] = p
                    pairs[k, 1] = q
                    pairs[k, 2] = d
                n_pairs[0] = k + 1
            if want and _before(d, ids[q], wd, wid):
                cnt = _insert(nb_id, nb_d, p, cnt, d, ids[q])
                wd, wid = _tail(nb_id, nb_d, p, cnt)
        nb_n[p] = cnt


@njit(cache=True)
def nearest_merge(
    g: np.ndarray, ysq: np.ndarray, a: int, c0: int, nb: np.ndarray, key: np.ndarray
) -> None:
    """Merge candidates ``c0 ..`` into the sorted lists of the nearest rows of rows ``a ..``.

    Any row is a candidate except the row itself (the reduction's near-duplicate search,
    :mod:`edgeasd.scoring.reduce`). Rows are ordered by ``|y_q|² - 2 <y_p, y_q>``, the squared
    distance without the row's own ``|y_p|²``, from float32 products; ties keep the smaller
    row first (candidates come in increasing order and only a strictly smaller key moves).

    Parameters
    ----------
    g : (r, c) float32
        ``y[a:a+r] @ y[c0:c0+c].T``.
    ysq : (n,) float64
        Squared norms of every row.
    a, c0 : int
        First row and first candidate of the block.
    nb : (n, k) int64
        Nearest rows so far (-1: none yet); updated in place.
    key : (n, k) float64
        Their keys (inf: none yet); updated in place.
    """
    k = nb.shape[1]
    for i in range(g.shape[0]):
        p = a + i
        worst = key[p, k - 1]
        for j in range(g.shape[1]):
            q = c0 + j
            if q == p:
                continue
            s = ysq[q] - 2.0 * np.float64(g[i, j])
            if s < worst:
                pos = k - 1
                while pos > 0 and key[p, pos - 1] > s:
                    key[p, pos] = key[p, pos - 1]
                    nb[p, pos] = nb[p, pos - 1]
                    pos -= 1
                key[p, pos] = s
                nb[p, pos] = q
                worst = key[p, k - 1]
