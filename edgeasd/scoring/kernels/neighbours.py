"""Neighbour-list kernels: sorted (distance, id) lists, running sums and densities from them.

Each reference keeps its ``L`` nearest eligible others sorted by (distance, id), ties
broken by the smaller id (see :mod:`edgeasd.scoring.density` for how they are used).
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
