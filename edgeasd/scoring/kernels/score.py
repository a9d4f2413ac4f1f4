"""Scoring kernels: pairwise distances and the fused normalized nearest-neighbour minimum.

Every kernel of :mod:`edgeasd.scoring.kernels` is compiled with ``@njit(cache=True)``,
so the machine code is cached on disk under ``$NUMBA_CACHE_DIR`` (which importing
:mod:`edgeasd` sets, see :mod:`edgeasd.jitcache`; never next to this file) and a fresh
process only pays the cache load. Each kernel is called with a single signature
(float32 embeddings, float64 distances, int64 ids), so the first call
compiles exactly one specialization.

Distances (``metric`` codes: 0 = cosine, 1 = euclidean) are computed from the squared
difference ``ss = sum((x - y) ** 2)``, accumulated in float32: every term is
positive, so there is no cancellation (relative error typically 1e-7, at most a
few 1e-6 at dim 512), while the loops vectorize twice as wide as in float64:

- cosine (rows stored L2-normalized): ``A = 0.25 * ss``, which equals
  ``0.5 * (1 - <x, y>)`` for unit vectors but has no cancellation, so exact
  duplicates get exactly 0 and near duplicates an accurate small distance;
- euclidean: ``A = 0.25 * sqrt(ss)``.

The pairwise kernel is bit-for-bit symmetric (``A(x, y) == A(y, x)``), which is what
lets an incrementally maintained neighbour list equal a from-scratch one exactly.
Ties in neighbour lists are broken by the smaller reference id.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgeasd.scoring.kernels.codes import (  # noqa: F401  (re-exported)
    COSINE,
    EUCLIDEAN,
    METRICS,
    NORM_DIFFERENCE,
    NORM_NONE,
    NORM_RATIO,
    NORMS,
)

# fastmath lets LLVM vectorize the float reductions; inputs are validated finite first.
_FM = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, inline="always")
def _finish(ss: float, metric: int) -> float:
    if metric == COSINE:
        return min(0.25 * ss, 1.0)
    return 0.25 * np.sqrt(ss)


@njit(cache=True)
def prepare_rows(x: np.ndarray, cosine: bool, out: np.ndarray) -> tuple[int, int]:
    """Check rows and convert them to float32 (L2-normalized if ``cosine``) in one pass.

    Parameters
    ----------
    x : (m, dim) float64
    cosine : bool
        Normalize each row (scaled by its largest magnitude first, so any finite
        scale works); zero rows are an error.
    out : (m, dim) float32
        Receives the converted rows.

    Returns
    -------
    code : int
        0 ok, 1 NaN/inf value, 2 zero row under cosine, 3 value beyond float32.
    row : int
        The first offending row (-1 when ok).
    """
    f32max = 3.4028234663852886e38
    for i in range(x.shape[0]):
        peak = 0.0
        for k in range(x.shape[1]):
            v = x[i, k]
            if not np.isfinite(v):
                return 1, i
            peak = max(peak, abs(v))
        if cosine:
            if peak == 0.0:
                return 2, i
            ss = 0.0
            for k in range(x.shape[1]):
                t = x[i, k] / peak
                ss += t * t
            norm = np.sqrt(ss)
            for k in range(x.shape[1]):
                out[i, k] = (x[i, k] / peak) / norm
        else:
            if peak > f32max:
                return 3, i
            for k in range(x.shape[1]):
                out[i, k] = x[i, k]
    return 0, -1


@njit(cache=True, fastmath=_FM)
def cross_dist(a: np.ndarray, b: np.ndarray, metric: int) -> np.ndarray:
    """Distances between every row of ``a`` and every row of ``b``.

    Parameters
    ----------
    a : (na, dim) float32
    b : (nb, dim) float32
    metric : int
        0 = cosine (rows must be L2-normalized), 1 = euclidean.

    Returns
    -------
    (na, nb) float64
        ``A(a[i], b[j])``; symmetric bit for bit under swapping the arguments.
    """
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            ss = np.float32(0.0)
            for k in range(a.shape[1]):  # 2-D indexing: no per-pair array views
                t = a[i, k] - b[j, k]
                ss += t * t
            out[i, j] = _finish(np.float64(ss), metric)
    return out


@njit(cache=True, inline="always")
def _normalize(d: float, rho: float, norm: int) -> float:
    if norm == NORM_RATIO:
        return d / rho
    if norm == NORM_DIFFERENCE:
        return d - rho
    return d


@njit(cache=True, fastmath=_FM)
def score_fused(
    q: np.ndarray, y: np.ndarray, n: int, rho: np.ndarray, metric: int, norm: int
) -> tuple[float, int]:
    """Normalized nearest-neighbour score of one query in a single pass over the bank.

    Four references are processed at once (each query element is loaded once for
    four rows) with float32 accumulators: ``sum((q - y) ** 2)`` has only positive
    terms, so float32 keeps its relative error near 1e-7 at dim 512 while the loop
    runs at memory speed.

    Parameters
    ----------
    q : (dim,) float32
        The query (L2-normalized under cosine).
    y : (cap, dim) float32
        Reference storage; only the first ``n`` rows are used.
    n : int
        Number of references.
    rho : (cap,) float64
        Floored density constants aligned with ``y``.
    metric, norm : int
        Metric and normalization codes (module constants).

    Returns
    -------
    score : float
        ``min_i norm(A(q, y_i), rho_i)``.
    position : int
        Row of the minimizing reference (first one on ties).
    """
    best = np.inf
    arg = -1
    dim = q.shape[0]
    ss = np.zeros(4, dtype=np.float64)
    i = 0
    while i < n:
        rows = min(4, n - i)
        if rows == 4:
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            for k in range(dim):
                qk = q[k]
                t0 = qk - y[i, k]
                t1 = qk - y[i + 1, k]
                t2 = qk - y[i + 2, k]
                t3 = qk - y[i + 3, k]
                s0 += t0 * t0
                s1 += t1 * t1
                s2 += t2 * t2
                s3 += t3 * t3
            ss[0], ss[1], ss[2], ss[3] = s0, s1, s2, s3
        else:
            for r in range(rows):
                acc = np.float32(0.0)
                for k in range(dim):
                    t = q[k] - y[i + r, k]
                    acc += t * t
                ss[r] = acc
        for r in range(rows):
            s = _normalize(_finish(ss[r], metric), rho[i + r], norm)
            if s < best:
                best = s
                arg = i + r
        i += rows
    return best, arg


@njit(cache=True, fastmath=True)
def _dot(q: np.ndarray, y: np.ndarray, i: int) -> float:
    """``<q, y[i]>`` in float32 (vectorized; the same error bound as a BLAS product)."""
    acc = np.float32(0.0)
    for k in range(q.shape[0]):
        acc += q[k] * y[i, k]
    return acc


@njit(cache=True)
def score_one_pass(
    q: np.ndarray,
    y: np.ndarray,
    n: int,
    qsq: float,
    ysq: np.ndarray,
    w: np.ndarray,
    metric: int,
    norm: int,
) -> tuple[float, int]:
    """One query in one pass over the bank: each row read once, no temporary of length N.

    A plain per-row float32 dot product runs at the speed of reading the bank (measured
    2x faster than OpenBLAS's matrix-vector product at N = 100,000, BENCHMARKS.md section
    costs); each entry is then finished as in :func:`score_from_dots`.

    Parameters
    ----------
    q : (dim,) float32
    y : (cap, dim) float32
    n : int
        References in use.
    qsq : float
    ysq, w : (cap,) float64
        Squared norms; ``1 / rho`` (ratio) or ``rho``.
    metric, norm : int

    Returns
    -------
    score : float
    row : int
        First row attaining it.
    """
    best = np.inf
    arg = -1
    for i in range(n):
        ss = max((qsq + ysq[i]) - 2.0 * np.float64(_dot(q, y, i)), 0.0)
        d = min(0.25 * ss, 1.0) if metric == COSINE else 0.25 * np.sqrt(ss)
        if norm == NORM_RATIO:
            s = d * w[i]
        elif norm == NORM_DIFFERENCE:
            s = d - w[i]
        else:
            s = d
        if s < best:
            best = s
            arg = i
    return best, arg


@njit(cache=True, fastmath=True)
def _row_min(tmp: np.ndarray) -> float:
    """Smallest entry (inputs finite; the minimum does not depend on the order)."""
    low = np.inf
    for j in range(tmp.shape[0]):
        low = min(low, tmp[j])
    return low


@njit(cache=True)
def score_from_dots(
    g: np.ndarray,
    qsq: np.ndarray,
    ysq: np.ndarray,
    w: np.ndarray,
    offset: int,
    metric: int,
    norm: int,
    best: np.ndarray,
    arg: np.ndarray,
) -> None:
    """Batch path: fold one block of a BLAS product ``g = Q @ Y[block].T`` into running minima.

    Each entry is ``min(0.25 * max((|q|² + |y|²) - 2 g, 0), 1) * w`` (cosine, ratio), one
    IEEE operation at a time (no fast-math), so it equals, bit for bit, the same numpy
    expression that scores a single query without numba
    (:func:`edgeasd.scoring.references.score_one`).

    Parameters
    ----------
    g : (m, b) float32
        Inner products of the queries and the block's references.
    qsq : (m,) float64
        Squared norms of the queries.
    ysq : (b,) float64
        Squared norms of the block's references.
    w : (b,) float64
        Per reference: ``1 / rho`` under ``ratio`` (a product instead of a division per
        entry; it differs from ``d / rho`` by at most one rounding), ``rho`` otherwise.
    offset : int
        Row of the block's first reference.
    metric, norm : int
        Metric and normalization codes.
    best : (m,) float64
        Running minima (start at inf); updated in place.
    arg : (m,) int64
        Rows attaining them (first one on ties, as blocks come in row order).
    """
    tmp = np.empty(g.shape[1], dtype=np.float64)
    # three passes over a cached row beat one branchy argmin loop
    for i in range(g.shape[0]):
        q = qsq[i]
        for j in range(g.shape[1]):
            ss = max((q + ysq[j]) - 2.0 * np.float64(g[i, j]), 0.0)
            d = min(0.25 * ss, 1.0) if metric == COSINE else 0.25 * np.sqrt(ss)
            if norm == NORM_RATIO:
                tmp[j] = d * w[j]
            elif norm == NORM_DIFFERENCE:
                tmp[j] = d - w[j]
            else:
                tmp[j] = d
        low = _row_min(tmp)
        if low < best[i]:
            for j in range(g.shape[1]):
                if tmp[j] == low:
                    best[i] = low
                    arg[i] = offset + j
                    break


@njit(cache=True)
def score_from_dots_t(
    gt: np.ndarray,
    qsq: np.ndarray,
    ysq: np.ndarray,
    w: np.ndarray,
    offset: int,
    metric: int,
    norm: int,
    best: np.ndarray,
    arg: np.ndarray,
) -> None:
    """:func:`score_from_dots` for the transposed block ``gt = Y[block] @ Q.T``, shape (b, m).

    The batch path multiplies in this orientation: OpenBLAS ran ``Y[block] @ Q.T`` 20-25 %
    faster than ``Q @ Y[block].T`` for 64 queries and 1,000-10,000 references of dim 512
    (1 thread; BENCHMARKS.md, section costs). Each entry is the same IEEE expression as in
    :func:`score_from_dots`; references come in row order and a minimum moves only to a
    strictly smaller value, so ``arg`` is the first row attaining it.

    Parameters
    ----------
    gt : (b, m) float32
    qsq : (m,) float64
    ysq, w : (b,) float64
    offset : int
    metric, norm : int
    best : (m,) float64
    arg : (m,) int64
        Updated in place.
    """
    m = gt.shape[1]
    for j in range(gt.shape[0]):
        y2 = ysq[j]
        wj = w[j]
        for i in range(m):
            ss = max((qsq[i] + y2) - 2.0 * np.float64(gt[j, i]), 0.0)
            d = min(0.25 * ss, 1.0) if metric == COSINE else 0.25 * np.sqrt(ss)
            if norm == NORM_RATIO:
                s = d * wj
            elif norm == NORM_DIFFERENCE:
                s = d - wj
            else:
                s = d
            if s < best[i]:
                best[i] = s
                arg[i] = offset + j
