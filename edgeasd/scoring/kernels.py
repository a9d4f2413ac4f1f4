"""All Numba kernels of the scoring engine.

Every kernel is compiled with ``@njit(cache=True)``, so the machine code is cached
on disk under ``$NUMBA_CACHE_DIR`` (which importing :mod:`edgeasd` sets, see
:mod:`edgeasd.jitcache`; never next to this file) and a fresh process only pays the
cache load. Each kernel is called
with a single signature (float32 embeddings, float64 distances, int64 ids), so the
first call compiles exactly one specialization.

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

COSINE = 0
EUCLIDEAN = 1
NORM_RATIO = 0
NORM_DIFFERENCE = 1
NORM_NONE = 2
METRICS = {"cosine": COSINE, "euclidean": EUCLIDEAN}
NORMS = {"ratio": NORM_RATIO, "difference": NORM_DIFFERENCE, "none": NORM_NONE}

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


@njit(cache=True, fastmath=_FM)
def score_from_dots(
    g: np.ndarray,
    qsq: np.ndarray,
    ysq: np.ndarray,
    rho: np.ndarray,
    metric: int,
    norm: int,
    out_s: np.ndarray,
    out_arg: np.ndarray,
) -> None:
    """Batch path: normalized min from a BLAS product ``g = Q @ Y.T`` (cosine only).

    Parameters
    ----------
    g : (m, n) float32
        Inner products of the queries and the references.
    qsq : (m,) float64
        Squared norms of the queries.
    ysq : (n,) float64
        Squared norms of the references.
    rho : (n,) float64
        Floored density constants.
    metric, norm : int
        Metric and normalization codes.
    out_s : (m,) float64
        Receives the scores.
    out_arg : (m,) int64
        Receives the minimizing reference rows.
    """
    for i in range(g.shape[0]):
        best = np.inf
        arg = -1
        for j in range(g.shape[1]):
            ss = max(qsq[i] + ysq[j] - 2.0 * np.float64(g[i, j]), 0.0)
            d = min(0.25 * ss, 1.0) if metric == COSINE else 0.25 * np.sqrt(ss)
            s = _normalize(d, rho[j], norm)
            if s < best:
                best = s
                arg = j
        out_s[i] = best
        out_arg[i] = arg


@njit(cache=True)
def _before(d: float, ident: int, wd: float, wid: int) -> bool:
    """Whether (d, ident) sorts before (wd, wid): by distance, then by id."""
    return d < wd or (d == wd and ident < wid)


@njit(cache=True)
def _tail(lst_id: np.ndarray, lst_d: np.ndarray, p: int, cnt: int) -> tuple[float, int]:
    """The entry a candidate must beat to enter row ``p`` (``(inf, max)`` if not full).

    Callers test candidates against it with the scalar :func:`_before` and only call
    :func:`_insert` (array arguments cost a call each) for the few that enter.
    """
    cap = lst_id.shape[1]
    if cnt < cap:
        return np.inf, np.iinfo(np.int64).max
    return lst_d[p, cap - 1], lst_id[p, cap - 1]


@njit(cache=True)
def _insert(lst_id: np.ndarray, lst_d: np.ndarray, p: int, cnt: int, d: float, ident: int) -> int:
    """Insert ``(d, ident)`` into row ``p`` of lists sorted by (distance, id).

    The candidate must sort before :func:`_tail`. Returns the row's new count (capped
    at the list width).
    """
    cap = lst_id.shape[1]
    pos = cnt if cnt < cap else cap - 1
    while pos > 0 and _before(d, ident, lst_d[p, pos - 1], lst_id[p, pos - 1]):
        if pos < cap:
            lst_d[p, pos] = lst_d[p, pos - 1]
            lst_id[p, pos] = lst_id[p, pos - 1]
        pos -= 1
    lst_d[p, pos] = d
    lst_id[p, pos] = ident
    return min(cnt + 1, cap)


@njit(cache=True, inline="always")
def _eligible(
    ident: int, group: int, other: int, other_group: int, exclude_same_group: bool
) -> bool:
    """Whether reference ``other`` may be a density neighbour of reference ``ident``.

    Never itself (by id); with ``exclude_same_group`` never one of its own group.
    """
    return other != ident and not (exclude_same_group and other_group == group)


@njit(cache=True)
def insert_candidates(
    dist: np.ndarray,
    row_pos: np.ndarray,
    row_ids: np.ndarray,
    row_grp: np.ndarray,
    col_ids: np.ndarray,
    col_grp: np.ndarray,
    exclude_same_group: bool,
    nb_id: np.ndarray,
    nb_d: np.ndarray,
    nb_n: np.ndarray,
) -> None:
    """Merge candidate neighbours into sorted neighbour lists, in place.

    Row ``i`` of ``dist`` holds the distances of reference ``row_ids[i]`` (stored at
    row ``row_pos[i]`` of the list arrays) to the candidates ``col_ids``. Self (by
    id) is never a neighbour; with ``exclude_same_group`` neither is a reference of
    the same group. Lists hold at most ``nb_id.shape[1]`` entries sorted by
    (distance, id), so the result does not depend on the order candidates arrive in.

    Parameters
    ----------
    dist : (r, c) float64
    row_pos, row_ids, row_grp : (r,) int64
    col_ids, col_grp : (c,) int64
    exclude_same_group : bool
    nb_id : (cap, L) int64
    nb_d : (cap, L) float64
    nb_n : (cap,) int64
    """
    for i in range(dist.shape[0]):
        p = row_pos[i]
        cnt = nb_n[p]
        wd, wid = _tail(nb_id, nb_d, p, cnt)
        for j in range(dist.shape[1]):
            if not _eligible(row_ids[i], row_grp[i], col_ids[j], col_grp[j], exclude_same_group):
                continue
            if _before(dist[i, j], col_ids[j], wd, wid):
                cnt = _insert(nb_id, nb_d, p, cnt, dist[i, j], col_ids[j])
                wd, wid = _tail(nb_id, nb_d, p, cnt)
        nb_n[p] = cnt


@njit(cache=True)
def add_sums(
    dist: np.ndarray,
    row_pos: np.ndarray,
    row_ids: np.ndarray,
    row_grp: np.ndarray,
    col_ids: np.ndarray,
    col_grp: np.ndarray,
    exclude_same_group: bool,
    sign: float,
    sums: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Add (``sign=1``) or subtract (``sign=-1``) eligible distances to running sums.

    Used by the global-mean density (GWRP with r = 1). Eligibility as in
    :func:`insert_candidates`.

    Parameters
    ----------
    dist : (r, c) float64
    row_pos, row_ids, row_grp : (r,) int64
    col_ids, col_grp : (c,) int64
    exclude_same_group : bool
    sign : float
    sums : (cap,) float64
    counts : (cap,) int64
    """
    for i in range(dist.shape[0]):
        p = row_pos[i]
        for j in range(dist.shape[1]):
            if not _eligible(row_ids[i], row_grp[i], col_ids[j], col_grp[j], exclude_same_group):
                continue
            sums[p] += sign * dist[i, j]
            counts[p] += int(sign)


@njit(cache=True)
def _weighted(lst_d: np.ndarray, c: int, base: np.ndarray) -> float:
    """``sum_k w_k lst_d[k]`` with ``w = base[:c] / base[:c].sum()``; NaN when ``c == 0``."""
    if c == 0:
        return np.nan
    num = 0.0
    den = 0.0
    for k in range(c):
        num += base[k] * lst_d[k]
        den += base[k]
    return num / den


@njit(cache=True)
def rho_from_lists(nb_d: np.ndarray, nb_n: np.ndarray, n: int, base: np.ndarray) -> np.ndarray:
    """Density constants from sorted neighbour distances.

    ``rho_i = sum_k w_k d_ik`` with ``w = base[:c] / base[:c].sum()`` over the
    ``c = nb_n[i]`` neighbours available (NaN where ``c == 0``).

    Parameters
    ----------
    nb_d : (cap, L) float64
    nb_n : (cap,) int64
    n : int
        Number of rows in use.
    base : (L,) float64
        Unnormalized weights (ones for knn, ``r ** k`` for GWRP).

    Returns
    -------
    (n,) float64
    """
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = _weighted(nb_d[i], nb_n[i], base)
    return out


@njit(cache=True)
def loo_density_table(
    dist: np.ndarray,
    row_pos: np.ndarray,
    ids: np.ndarray,
    grp: np.ndarray,
    exclude_same_group: bool,
    list_grp: np.ndarray,
    group_size: np.ndarray,
    base: np.ndarray,
    out_g: np.ndarray,
    out_rho: np.ndarray,
) -> None:
    """Densities of references with one whole group left out (list densities).

    For reference ``p = row_pos[i]`` (distances to all references in ``dist[i]``)
    and every group ``g`` among its current neighbours (``list_grp[p]``, -1 padded),
    computes the density the reference would have if group ``g`` had never been
    enrolled. Only these groups can change its density. The first ``L`` eligible
    neighbours outside ``g`` are among the first ``L + |g|`` eligible ones, so one
    partial selection per row serves all its groups.

    Parameters
    ----------
    dist : (r, n) float64
    row_pos : (r,) int64
    ids, grp : (n,) int64
        Ids and group codes of all references (positions increase with ids).
    exclude_same_group : bool
    list_grp : (n, L) int64
        Group codes of each reference's current neighbours, -1 where none.
    group_size : (n_groups,) int64
        References per group code.
    base : (L,) float64
        Unnormalized weights.
    out_g : (n, L) int64
        Receives the group codes (-1 padded).
    out_rho : (n, L) float64
        Receives the leave-group-out densities (NaN where no neighbour is left).
    """
    width = list_grp.shape[1]
    for i in range(dist.shape[0]):
        p = row_pos[i]
        extra = 0
        for s in range(width):
            g = list_grp[p, s]
            if g >= 0 and group_size[g] > extra:
                extra = group_size[g]
        # Few groups: one selection per group; many: one partial selection of
        # L + |largest group| entries serves all of them.
        n_list = 0
        for s in range(width):
            if list_grp[p, s] >= 0:
                n_list += 1
        per_group = n_list <= 4
        t = width if per_group else width + extra
        top_d = np.empty((1, t), dtype=np.float64)
        top_id = np.empty((1, t), dtype=np.int64)
        top_g = np.empty(t, dtype=np.int64)
        cnt = 0
        if not per_group:
            wd, wid = _tail(top_id, top_d, 0, cnt)
            for j in range(dist.shape[1]):
                if not _eligible(p, grp[p], j, grp[j], exclude_same_group):
                    continue
                if _before(dist[i, j], j, wd, wid):
                    cnt = _insert(top_id, top_d, 0, cnt, dist[i, j], j)
                    wd, wid = _tail(top_id, top_d, 0, cnt)
            for k in range(cnt):
                top_g[k] = grp[top_id[0, k]]
        slot = 0
        sel = np.empty((1, width), dtype=np.float64)
        for s in range(width):
            g = list_grp[p, s]
            if g < 0:
                continue
            seen = False
            for u in range(slot):
                if out_g[p, u] == g:
                    seen = True
            if seen:
                continue
            c = 0
            if per_group:
                wd, wid = _tail(top_id, sel, 0, c)
                for j in range(dist.shape[1]):
                    if grp[j] == g or not _eligible(p, grp[p], j, grp[j], exclude_same_group):
                        continue
                    if _before(dist[i, j], j, wd, wid):
                        c = _insert(top_id, sel, 0, c, dist[i, j], j)
                        wd, wid = _tail(top_id, sel, 0, c)
            else:
                for k in range(cnt):
                    if top_g[k] != g:
                        sel[0, c] = top_d[0, k]
                        c += 1
                        if c == width:
                            break
            out_g[p, slot] = g
            out_rho[p, slot] = _weighted(sel[0], c, base)
            slot += 1
        for u in range(slot, width):
            out_g[p, u] = -1


@njit(cache=True)
def loo_scores(
    dist: np.ndarray,
    q_grp: np.ndarray,
    q_gidx: np.ndarray,
    grp: np.ndarray,
    rho: np.ndarray,
    mode: int,
    loo_g: np.ndarray,
    loo_rho: np.ndarray,
    gsum: np.ndarray,
    gcount: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    fallback: float,
    eps: float,
    norm: int,
    out: np.ndarray,
) -> None:
    """Leave-one-group-out scores of references.

    Query ``i`` (a reference of group ``q_grp[i]``) is scored against every
    reference outside its group, each normalized by the density it would have
    without the query's group: from the table of :func:`loo_density_table`
    (``mode`` 0) or from running sums minus the group's share (``mode`` 1,
    global mean). NaN densities (no neighbour left) take ``fallback``; all are
    floored at ``eps``. Queries with no reference outside their group get NaN.

    Parameters
    ----------
    dist : (r, n) float64
        Distances of the queries to all references.
    q_grp : (r,) int64
    q_gidx : (r,) int64
        Row of the query's group in ``gsum``/``gcount`` (mode 1).
    grp : (n,) int64
    rho : (n,) float64
        Unfloored full-bank densities.
    mode : int
    loo_g : (n, L) int64
    loo_rho : (n, L) float64
    gsum : (ng, n) float64
        Per group of the chunk: summed distances of each reference to its members.
    gcount : (ng, n) int64
        Per group of the chunk: how many members are eligible neighbours of each reference.
    sums : (n,) float64
    counts : (n,) int64
    fallback, eps : float
    norm : int
    out : (r,) float64
    """
    for i in range(dist.shape[0]):
        gq = q_grp[i]
        best = np.inf
        for j in range(dist.shape[1]):
            if grp[j] == gq:
                continue
            r = rho[j]
            if mode == 0:
                for s in range(loo_g.shape[1]):
                    if loo_g[j, s] == gq:
                        r = loo_rho[j, s]
                        break
            else:
                c = counts[j] - gcount[q_gidx[i], j]
                r = (sums[j] - gsum[q_gidx[i], j]) / c if c > 0 else np.nan
            if r != r:
                r = fallback
            r = max(r, eps)
            s = _normalize(dist[i, j], r, norm)
            if s < best:
                best = s
        out[i] = best if best < np.inf else np.nan
