"""Incrementally maintained local-density constants of a reference bank.

Each reference keeps the sorted list of its ``L`` nearest *eligible* other
references (eligible: a different id and, with ``exclude_same_group``, a different
group), sorted by (distance, id). Densities follow from the lists:

- ``knn`` with K: the mean of the first ``min(K, c)`` distances, ``c`` the number of
  eligible others (so K >= N-1 uses all of them);
- ``gwrp`` with 0 <= r < 1: weights ``r ** (n-1)``, normalized over the neighbours
  kept. Weights below :data:`GWRP_TOLERANCE` times the first weight are dropped, i.e.
  ``L`` is the smallest n with ``r ** n <= GWRP_TOLERANCE``; the dropped tail carries
  at most that fraction of the total weight, so ρ is changed by at most
  ``GWRP_TOLERANCE * (d_max - d_min)`` of that reference's neighbour distances
  (under cosine at most 1e-9 in absolute terms). r = 0 gives L = 1, i.e. knn K=1;
- ``gwrp`` with r = 1: the mean distance to all eligible others, kept as running sums.

Enrolling m references into N costs O((N+m)·m·dim) distances plus list merges;
removing references re-scans only the references whose lists held a removed id
(and, for r = 1, subtracts the removed references' distances from the sums).
"""

from __future__ import annotations

import math

import numpy as np

from edgeasd.scoring import kernels

#: Relative weight below which GWRP neighbours are dropped (see module docstring).
GWRP_TOLERANCE = 1e-9


def list_length(density: str, k: int, r: float | None) -> int | None:
    """Neighbours each reference must keep; ``None`` means running sums (GWRP r = 1)."""
    if density == "knn":
        return k
    assert r is not None
    if r >= 1.0:
        return None
    if r <= 0.0:
        return 1
    return max(1, math.ceil(math.log(GWRP_TOLERANCE) / math.log(r)))


def base_weights(density: str, length: int, r: float | None) -> np.ndarray:
    """Unnormalized weights, shape ``(length,)``: ones (knn) or ``r ** n`` (gwrp)."""
    if density == "knn" or r is None:
        return np.ones(length)
    return np.power(float(r), np.arange(length, dtype=np.float64))


class NeighbourState:
    """Neighbour lists (or running sums) of references stored by row position.

    Rows follow the bank's storage order, which is always increasing in id.

    Parameters
    ----------
    length : int or None
        Neighbours per reference (``None``: running sums for the global mean).
    base : (length,) float64 or None
        Unnormalized weights of the sorted neighbours.
    exclude_same_group : bool
        Whether same-group references are ineligible neighbours.
    """

    def __init__(self, length: int | None, base: np.ndarray | None, exclude_same_group: bool):
        self.length = length
        self.base = base
        self.exclude_same_group = exclude_same_group
        self.nb_id = np.empty((0, 0), dtype=np.int64)
        self.nb_d = np.empty((0, 0), dtype=np.float64)
        self.nb_n = np.zeros(0, dtype=np.int64)
        self.sums = np.zeros(0, dtype=np.float64)
        self.counts = np.zeros(0, dtype=np.int64)

    @property
    def width(self) -> int:
        """Columns of the list arrays (``min(L, capacity - 1)``, at least 1)."""
        return self.nb_id.shape[1]

    def reserve(self, cap: int) -> None:
        """Grow the per-row arrays to ``cap`` rows, widening lists up to ``L``."""
        old = self.nb_n.shape[0]
        if self.length is None:
            if cap > old:
                self.sums = np.concatenate([self.sums, np.zeros(cap - old)])
                self.counts = np.concatenate([self.counts, np.zeros(cap - old, np.int64)])
            return
        width = max(1, min(self.length, cap - 1))
        if cap <= old and width <= self.width:
            return
        cap = max(cap, old)
        width = max(width, self.width)
        nb_id = np.full((cap, width), -1, dtype=np.int64)
        nb_d = np.full((cap, width), np.inf, dtype=np.float64)
        nb_n = np.zeros(cap, dtype=np.int64)
        nb_id[:old, : self.width] = self.nb_id
        nb_d[:old, : self.width] = self.nb_d
        nb_n[:old] = self.nb_n
        self.nb_id, self.nb_d, self.nb_n = nb_id, nb_d, nb_n

    def _merge(self, dist, rows, ids, grp, cols, sign=1.0) -> None:
        """Feed distances ``dist[(rows), (cols)]`` (positions) into lists or sums."""
        args = (dist, rows, ids[rows], grp[rows], ids[cols], grp[cols], self.exclude_same_group)
        if self.length is None:
            kernels.add_sums(*args, sign, self.sums, self.counts)
        else:
            kernels.insert_candidates(*args, self.nb_id, self.nb_d, self.nb_n)

    def add(self, y: np.ndarray, n_old: int, n_new: int, ids, grp, metric: int) -> np.ndarray:
        """Account for references at rows ``n_old .. n_old+n_new-1`` (already stored).

        Parameters
        ----------
        y : (cap, dim) float32
        n_old, n_new : int
        ids, grp : (cap,) int64
        metric : int

        Returns
        -------
        (n_old + n_new, n_new) float64
            Distances of all references to the new ones.
        """
        n = n_old + n_new
        self.reserve(len(ids))
        if self.length is None:  # rows past the end may hold data of removed references
            self.sums[n_old:n], self.counts[n_old:n] = 0.0, 0
        else:
            self.nb_n[n_old:n], self.nb_id[n_old:n], self.nb_d[n_old:n] = 0, -1, np.inf
        new = np.arange(n_old, n, dtype=np.int64)
        every = np.arange(n, dtype=np.int64)
        dist = kernels.cross_dist(y[:n], y[n_old:n], metric)  # (n, m): O((N+m)·m·dim)
        if n_old:
            self._merge(np.ascontiguousarray(dist[:n_old]), every[:n_old], ids, grp, new)
        self._merge(np.ascontiguousarray(dist.T), new, ids, grp, every)
        return dist

    def remove_rows(self, y, keep: np.ndarray, removed_ids: np.ndarray, ids, grp, metric) -> None:
        """Drop rows not in ``keep`` and repair what referenced them.

        Parameters
        ----------
        y : (cap, dim) float32
            Storage *before* compaction.
        keep : (n,) bool
            Rows that stay.
        removed_ids : (r,) int64
        ids, grp : (cap,) int64
            Before compaction.
        metric : int
        """
        kept = np.flatnonzero(keep)
        if self.length is None:
            gone = np.flatnonzero(~keep)
            dist = kernels.cross_dist(y[kept], y[gone], metric)
            self._merge(dist, kept, ids, grp, gone, sign=-1.0)
            self.sums[: kept.size] = self.sums[kept]
            self.counts[: kept.size] = self.counts[kept]
            return
        self.nb_id[: kept.size] = self.nb_id[kept]
        self.nb_d[: kept.size] = self.nb_d[kept]
        self.nb_n[: kept.size] = self.nb_n[kept]
        hit = np.isin(self.nb_id[: kept.size], removed_ids).any(axis=1)
        rows = np.flatnonzero(hit)
        if rows.size == 0:
            return
        self.nb_n[rows] = 0
        self.nb_id[rows] = -1
        self.nb_d[rows] = np.inf
        y_new, ids_new, grp_new = y[kept], ids[kept], grp[kept]
        dist = kernels.cross_dist(y_new[rows], y_new, metric)
        self._merge(dist, rows, ids_new, grp_new, np.arange(kept.size, dtype=np.int64))

    def rho(self, n: int) -> np.ndarray:
        """Raw densities of the first ``n`` rows, shape ``(n,)``; NaN where no neighbour."""
        if self.length is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                c = self.counts[:n]
                return np.where(c > 0, self.sums[:n] / np.maximum(c, 1), np.nan)
        return kernels.rho_from_lists(self.nb_d, self.nb_n, n, self.base[: self.width])

    def neighbour_ids(self, n: int) -> np.ndarray:
        """Sorted neighbour ids of the first ``n`` rows, shape ``(n, width)``, -1 padded."""
        return self.nb_id[:n].copy()

    def to_arrays(self, n: int) -> dict[str, np.ndarray]:
        """The state as plain arrays for persistence."""
        if self.length is None:
            return {"sums": self.sums[:n].copy(), "counts": self.counts[:n].copy()}
        return {
            "nb_id": self.nb_id[:n].copy(),
            "nb_d": self.nb_d[:n].copy(),
            "nb_n": self.nb_n[:n].copy(),
        }

    def from_arrays(self, arrays: dict[str, np.ndarray], n: int) -> None:
        """Restore what :meth:`to_arrays` returned, for ``n`` rows."""
        if self.length is None:
            self.sums, self.counts = arrays["sums"].copy(), arrays["counts"].copy()
            return
        self.nb_id = arrays["nb_id"].copy()
        self.nb_d = arrays["nb_d"].copy()
        self.nb_n = arrays["nb_n"].copy()
        if self.nb_id.shape[0] == 0:
            self.nb_id = np.empty((0, 1), np.int64)
            self.nb_d = np.empty((0, 1), np.float64)
        self.reserve(max(n, 1))
