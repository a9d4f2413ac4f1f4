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
from collections.abc import Callable

import numpy as np

from edgeasd.scoring import kernels

#: Relative weight below which GWRP neighbours are dropped (see module docstring).
GWRP_TOLERANCE = 1e-9
#: New references per BLAS block of the density build, and candidates per block: a
#: float32 block of 512 x 4096 is 8 MiB (the build's working memory at any N).
BLOCK_ROWS = 512
BLOCK_COLS = 4096
#: Blocks of at most this many new rows take their products from
#: :func:`edgeasd.scoring.kernels.select.thin_dots` instead of BLAS: an enrollment group
#: (6 windows by default) against the bank. Measured at N = 10,000 / 100,000, dim 512, 6 rows,
#: 1 thread: 3.5 / 27 ms against 6.9 / 66 ms for BLAS in the same 4096-row blocks (BLAS packs
#: each block of the bank before multiplying) and 4.8 / 43 ms for numpy's whole ``Y @ X.T``.
THIN_ROWS = 16
#: Close pairs (duplicate report) kept per enrollment.
MAX_PAIRS = 10_000


def _gamma(dim: int) -> np.ndarray:
    """Rounding-error factors of :func:`kernels.merge_block` for rows of ``dim``."""
    s = kernels.SAFETY
    return np.array([s * kernels.gamma(dim), s * kernels.gamma(dim + 2)])


def rho_from_lists(nb_d: np.ndarray, nb_n: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Densities from sorted neighbour distances, without numba (a bank loads without it).

    ``rho_i = sum_k w_k d_ik`` with ``w = base[:c] / base[:c].sum()`` over the ``c =
    nb_n[i]`` neighbours available (NaN where ``c == 0``). Accumulated over the columns in
    order, one IEEE operation at a time: the same bits as
    :func:`edgeasd.scoring.kernels.neighbours.rho_from_lists`, which long lists use.

    Parameters
    ----------
    nb_d : (n, L) float64
    nb_n : (n,) int64
    base : (L,) float64

    Returns
    -------
    (n,) float64
    """
    if nb_d.shape[1] > 64:
        return kernels.rho_from_lists(nb_d, nb_n, nb_d.shape[0], base)
    num = np.zeros(nb_d.shape[0])
    den = np.zeros(nb_d.shape[0])
    for k in range(nb_d.shape[1]):  # no gathers / scatters: 3.0 vs 3.4-6.0 ms at N = 100,000
        on = nb_n > k
        num += np.where(on, base[k] * nb_d[:, k], 0.0)  # + 0.0 leaves the others' bits
        den += np.where(on, base[k], 0.0)
    with np.errstate(invalid="ignore"):
        return np.where(nb_n > 0, num / den, np.nan)


def _close_pairs(dist, rows, cols, close, pairs, n_pairs) -> None:
    """Append (row, col, d) with ``cols < rows`` and ``d <= close`` to ``pairs``."""
    if close < 0:
        return
    r, c = np.nonzero((dist <= close) & (cols[None, :] < rows[:, None]))
    k = int(n_pairs[0])
    take = max(0, min(r.size, pairs.shape[0] - k))
    pairs[k : k + take] = np.column_stack(
        [rows[r[:take]], cols[c[:take]], dist[r[:take], c[:take]]]
    )
    n_pairs[0] = k + r.size


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

    def add(
        self,
        y: np.ndarray,
        ysq: np.ndarray,
        n_old: int,
        n_new: int,
        ids: np.ndarray,
        grp: np.ndarray,
        metric: int,
        close: float = -1.0,
        fold: Callable[[np.ndarray, int, int, int], None] | None = None,
    ) -> np.ndarray:
        """Account for references at rows ``n_old .. n_old+n_new-1`` (already stored).

        New rows go in blocks of :data:`BLOCK_ROWS`, against candidates in blocks of
        :data:`BLOCK_COLS` up to the block's end: a float32 BLAS product bounds the
        distances, and only the candidates that can enter a list get the exact one
        (:mod:`edgeasd.scoring.kernels.select`). The transposed product serves the earlier
        rows, so each pair's product is computed once (a from-scratch build is half an
        N x N product). No (N+m) x m matrix is held: memory is one block (8 MiB), so a
        from-scratch build of 100,000 references fits.

        Parameters
        ----------
        y : (cap, dim) float32
        ysq : (cap,) float64
            Squared norms of ``y``'s rows.
        n_old, n_new : int
        ids, grp : (cap,) int64
        metric : int
        close : float
            Report pairs (new, earlier) with exact distance <= close (< 0: none).
        fold : callable, optional
            Called as ``fold(g, a, b, c0)`` with each block's float32 products ``g`` of the
            new rows ``a .. b-1`` and the candidates ``c0 .. c0 + g.shape[1] - 1``, in
            increasing ``c0`` (the forward calibration scores the new rows from them: no
            second read of the bank). Not called for running sums (GWRP r = 1).

        Returns
        -------
        (p, 3) float64
            Reported pairs: row of the new reference, row of the earlier one, distance;
            at most :data:`MAX_PAIRS`.
        """
        n = n_old + n_new
        self.reserve(len(ids))
        if self.length is None:  # rows past the end may hold data of removed references
            self.sums[n_old:n], self.counts[n_old:n] = 0.0, 0
        else:
            self.nb_n[n_old:n], self.nb_id[n_old:n], self.nb_d[n_old:n] = 0, -1, np.inf
        pairs = np.empty((MAX_PAIRS, 3))
        n_pairs = np.zeros(1, np.int64)
        norms = np.sqrt(ysq[:n])
        for a in range(n_old, n, BLOCK_ROWS):
            b = min(n, a + BLOCK_ROWS)
            new = np.arange(a, b, dtype=np.int64)
            # candidates up to the block's end; the block's rows reach later rows (and the
            # earlier ones them) through the transposed product: each pair's product once
            for c0 in range(0, b, BLOCK_COLS):
                c1 = min(b, c0 + BLOCK_COLS)
                cols = np.arange(c0, c1, dtype=np.int64)
                before = cols[cols < a]
                if self.length is None:
                    dist = kernels.exact_dist(y[a:b], y[c0:c1], metric)
                    self._sums(dist, new, ids, grp, cols, 1.0)
                    if before.size:
                        self._sums(dist[:, : before.size].T.copy(), before, ids, grp, new, 1.0)
                    _close_pairs(dist, new, cols, close, pairs, n_pairs)
                    continue
                if b - a <= THIN_ROWS:
                    g = np.empty((b - a, c1 - c0), np.float32)
                    kernels.thin_dots(y, a, b, c0, c1, g)
                else:
                    g = y[a:b] @ y[c0:c1].T
                if fold is not None:
                    fold(g, a, b, c0)
                self._select(g, y, norms, new, cols, ids, grp, metric, close, pairs, n_pairs)
                if before.size:
                    gt = np.ascontiguousarray(g[:, : before.size].T)
                    self._select(gt, y, norms, before, new, ids, grp, metric, -1.0, pairs, n_pairs)
        return pairs[: min(int(n_pairs[0]), MAX_PAIRS)]

    def _select(self, g, y, norms, rows, cols, ids, grp, metric, close, pairs, n_pairs) -> None:
        """Exact candidates of one BLAS block into the lists (kernels.merge_block)."""
        kernels.merge_block(
            g, y, norms, rows, cols, ids, grp, self.exclude_same_group, metric,
            _gamma(y.shape[1]), self.nb_id, self.nb_d, self.nb_n, close, pairs, n_pairs,
        )  # fmt: skip

    def _sums(self, dist, rows, ids, grp, cols, sign) -> None:
        """Feed distances ``dist[(rows), (cols)]`` (positions) into the running sums."""
        kernels.add_sums(
            dist, rows, ids[rows], grp[rows], ids[cols], grp[cols],
            self.exclude_same_group, sign, self.sums, self.counts,
        )  # fmt: skip

    def remove_rows(
        self,
        y: np.ndarray,
        ysq: np.ndarray,
        keep: np.ndarray,
        gone: tuple[np.ndarray, np.ndarray, np.ndarray],
        ids: np.ndarray,
        grp: np.ndarray,
        metric: int,
    ) -> None:
        """Drop rows not in ``keep`` and repair what referenced them.

        Parameters
        ----------
        y : (cap, dim) float32
            Storage *after* compaction (the kept rows first, in order).
        ysq : (cap,) float64
            Squared norms, after compaction.
        keep : (n,) bool
            Rows (before compaction) that stay.
        gone : ((r, dim) float32, (r,) int64, (r,) int64)
            Rows, ids and group codes of the removed references.
        ids, grp : (cap,) int64
            After compaction.
        metric : int
        """
        kept = np.flatnonzero(keep)
        n = kept.size
        gone_y, gone_ids, gone_grp = gone
        if self.length is None:
            self.sums[:n] = self.sums[kept]
            self.counts[:n] = self.counts[kept]
            for c0 in range(0, n, BLOCK_COLS):
                rows = np.arange(c0, min(n, c0 + BLOCK_COLS), dtype=np.int64)
                dist = kernels.exact_dist(y[c0 : rows[-1] + 1], gone_y, metric)
                kernels.add_sums(
                    dist, rows, ids[rows], grp[rows], gone_ids, gone_grp,
                    self.exclude_same_group, -1.0, self.sums, self.counts,
                )  # fmt: skip
            return
        self.nb_id[:n] = self.nb_id[kept]
        self.nb_d[:n] = self.nb_d[kept]
        self.nb_n[:n] = self.nb_n[kept]
        rows = np.flatnonzero(np.isin(self.nb_id[:n], gone_ids).any(axis=1))
        if rows.size == 0:
            return
        self.nb_n[rows] = 0
        self.nb_id[rows] = -1
        self.nb_d[rows] = np.inf
        norms = np.sqrt(ysq[:n])
        pairs, n_pairs = np.empty((0, 3)), np.zeros(1, np.int64)
        for a in range(0, rows.size, BLOCK_ROWS):
            part = rows[a : a + BLOCK_ROWS]
            yr = y[part]
            for c0 in range(0, n, BLOCK_COLS):
                cols = np.arange(c0, min(n, c0 + BLOCK_COLS), dtype=np.int64)
                g = yr @ y[c0 : cols[-1] + 1].T
                self._select(g, y, norms, part, cols, ids, grp, metric, -1.0, pairs, n_pairs)

    def rho(self, n: int) -> np.ndarray:
        """Raw densities of the first ``n`` rows, shape ``(n,)``; NaN where no neighbour."""
        if self.length is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                c = self.counts[:n]
                return np.where(c > 0, self.sums[:n] / np.maximum(c, 1), np.nan)
        return rho_from_lists(self.nb_d[:n], self.nb_n[:n], self.base[: self.width])

    def neighbour_ids(self, n: int) -> np.ndarray:
        """Sorted neighbour ids of the first ``n`` rows, -1 padded.

        Shape ``(n, min(width, n - 1))`` (at least one column): a list never holds more
        than the ``n - 1`` others, so the view does not depend on the spare capacity.
        """
        return self.nb_id[:n, : max(1, min(self.width, n - 1))].copy()

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
