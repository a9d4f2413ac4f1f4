"""Leave-one-group-out kernels: densities and scores as if a whole group had not been enrolled.

See :mod:`edgeasd.scoring.calibrate` for the definition they compute.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgeasd.scoring.kernels.neighbours import _before, _eligible, _insert, _tail, _weighted
from edgeasd.scoring.kernels.score import _normalize


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
