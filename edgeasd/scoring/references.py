"""The fitted state of a reference bank, as one explicit object.

:class:`ReferenceSet` holds everything a :class:`~edgeasd.scoring.bank.ReferenceBank`
has learned: the stored embeddings and their ids, group and domain codes, enrollment
times, the neighbour lists (or sums) and the scoring densities. The bank, calibration
(:mod:`~edgeasd.scoring.calibrate`, :mod:`~edgeasd.scoring.forward`) and persistence
(:mod:`~edgeasd.scoring.serialize`) all work on this object; none of them reaches into
another's private attributes.

Storage is by row position, always increasing in id, with spare capacity past ``n``
(arrays grow geometrically, so enrolling one window at a time stays amortized O(1) in
copies). Only the first ``n`` rows are meaningful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeasd.scoring import density_rules, kernels
from edgeasd.scoring.density import NeighbourState, base_weights, list_length
from edgeasd.scoring.density_rules import CONDITION_VERSION, check_cap, check_rule, check_version
from edgeasd.scoring.validate import Labels, check_params

#: Floor of every density constant (scikit-learn's LOF uses the same 1e-10).
RHO_EPS = 1e-10
#: Queries per call from which cosine scoring takes the BLAS path (``Q @ Y.T``, then
#: one fused normalize-and-min pass). Measured in BENCHMARKS.md ("Fused single-pass
#: loop vs BLAS path"): on a quiet machine OpenBLAS's matrix-vector product beat the
#: fused single-pass loop (``kernels.score_fused``) even for one query at N = 10,000
#: (under heavy load from other processes the loop sometimes won), so the product form is
#: used from 1 query on (one query: numpy's product below ONE_PASS_MIN references, the
#: one-pass numba kernel from there). It computes A = 0.25 (|q|^2 + |y|^2 - 2 <q, y>), i.e.
#: 0.5 (1 - <q, y>) for unit rows, from float32 products: ~1e-7 absolute distance error.
#: Euclidean always uses the fused loop, since sqrt(|q|^2 + |y|^2 - 2 <q, y>) would
#: amplify that error at small distances.
BATCH_MIN = 1
#: Batch path: references per BLAS block are ``BLOCK_ENTRIES // queries`` (at least
#: ``BLOCK_MIN``): a float32 (queries x block) product of 1 MiB stays in the L2 cache for
#: the normalize-and-min pass, and every reference row is read from memory once per call
#: (the old query chunks of 4 Mi entries read a 100,000-reference bank twice for 64
#: queries).
#:
#: The inner-product form (for unit rows, ``A / rho = 0.5 (1 - <q, y>) / rho`` is an inner
#: product of ``[q, 1]`` with rows ``[-y/(2 rho), 1/(2 rho)]``: a maximum inner product search,
#: what faiss ``IndexFlatIP`` runs) reads the same bytes
#: once per call but needs a second, rho-scaled copy of the bank, rewritten at every density
#: change: above the 1.3x memory budget for no gain in speed, since this path already reads
#: each row once and is exact to the float32 products (as the inner-product form is).
BLOCK_ENTRIES = 1 << 18
BLOCK_MIN = 256
#: Capacity growth factor when full: 1 + GROWTH. A quarter keeps a grown bank within
#: 1.25x its rows (plus the 1/8 spare of a load) while copying each row ~4 times in all.
GROWTH = 0.25
#: References from which one query takes the numba single-pass kernel
#: (``kernels.score_one_pass``, at the speed of reading the bank: 2x numpy's
#: matrix-vector product at N = 100,000); smaller banks take numpy's product, so that the
#: daemon scoring one window never imports numba (64 MB of resident memory) while a
#: product over at most 8 MiB of references costs at most a millisecond or two.
ONE_PASS_MIN = 4096
#: Per-row arrays and their fill value in unused capacity.
_ROWS = (("y", 0), ("ids", -1), ("grp", -1), ("dom", -1), ("added", 0), ("ysq", 0))


def score_one(
    g: np.ndarray, qsq: float, ysq: np.ndarray, w: np.ndarray, metric: int, norm: int
) -> tuple[float, int]:
    """One query's normalized minimum from its inner products, in numpy.

    The same IEEE operations, in the same order, as
    :func:`edgeasd.scoring.kernels.score.score_from_dots_t` (the batch path), so both give
    the same bits for the same products.

    Parameters
    ----------
    g : (n,) float32
        Inner products of the query with every reference.
    qsq : float
        Squared norm of the query.
    ysq, w : (n,) float64
        Squared norms of the references; ``1 / rho`` (ratio) or ``rho``.
    metric, norm : int

    Returns
    -------
    score : float
    row : int
        First row attaining it.
    """
    ss = qsq + ysq
    ss -= 2.0 * g.astype(np.float64)
    np.maximum(ss, 0.0, out=ss)
    if metric == kernels.COSINE:
        ss *= 0.25
        np.minimum(ss, 1.0, out=ss)
    else:
        np.sqrt(ss, out=ss)
        ss *= 0.25
    if norm == kernels.NORM_RATIO:
        ss *= w
    elif norm == kernels.NORM_DIFFERENCE:
        ss -= w
    i = int(np.argmin(ss))
    return float(ss[i]), i


def spare_rows(n: int) -> int:
    """Rows kept free past ``n`` when a bank is loaded: n / 8, at least 64."""
    return max(64, n // 8)


@dataclass(frozen=True)
class Geometry:
    """The parameters that shape a bank's distances and densities (validated).

    Parameters
    ----------
    dim : int
    metric : {"cosine", "euclidean"}
    density : {"knn", "gwrp"}
    k : int
    r : float or None
        ``None`` under ``knn``.
    norm : {"ratio", "difference", "none"}
    exclude_same_group : bool
    density_cap : float or None
        Factor of the ``cap`` rule (:func:`~edgeasd.scoring.density_rules.capped`).
    density_rule : {"paper", "cap", "condition"} or None
        How raw densities are finished (:mod:`edgeasd.scoring.density_rules`); ``None``: the
        rule of a bank saved before rules had names, ``cap`` with a ``density_cap``, else
        ``paper``.
    condition_version : int
        Version of the ``condition`` rule (:data:`~edgeasd.scoring.density_rules.CONDITION_VERSION`;
        a bank file without one keeps version 1, :func:`edgeasd.scoring.serialize.from_state`).
    """

    dim: int
    metric: str = "cosine"
    density: str = "knn"
    k: int = 1
    r: float | None = None
    norm: str = "ratio"
    exclude_same_group: bool = True
    density_cap: float | None = None
    density_rule: str | None = None
    condition_version: int = CONDITION_VERSION

    def __post_init__(self) -> None:
        r = check_params(self.dim, self.metric, self.density, self.k, self.r, self.norm)
        object.__setattr__(self, "density_cap", check_cap(self.density_cap))
        object.__setattr__(self, "density_rule", check_rule(self.density_rule, self.density_cap))
        object.__setattr__(self, "condition_version", check_version(self.condition_version))
        object.__setattr__(self, "dim", int(self.dim))
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "exclude_same_group", bool(self.exclude_same_group))

    @property
    def neutral(self) -> float:
        """Density of a reference without any neighbour when no other has one either."""
        return 0.0 if self.norm == "difference" else 1.0


@dataclass
class ReferenceSet:
    """Stored references, their neighbour state and scoring densities.

    Attributes
    ----------
    geometry : Geometry
    n : int
        References stored (rows ``0 .. n-1``).
    next_id : int
        Id the next enrolled reference gets.
    y : (cap, dim) float32
        Embeddings (L2-normalized under cosine).
    ysq : (cap,) float64
        Squared norms of ``y``'s rows.
    ids, grp, dom : (cap,) int64
        Reference id, group code, domain code.
    added : (cap,) float64
        UNIX enrollment time.
    group_labels, domain_labels : Labels
        Names of the group and domain codes.
    neighbours : NeighbourState
        Neighbour lists (or running sums) by row.
    rho : (n,) float64
        Scoring densities: floored at :data:`RHO_EPS`, no-neighbour fallback applied.
    """

    geometry: Geometry
    n: int = 0
    next_id: int = 0
    y: np.ndarray = field(default=None)  # type: ignore[assignment]
    ysq: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    grp: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    dom: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    added: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    group_labels: Labels = field(default_factory=Labels)
    domain_labels: Labels = field(default_factory=Labels)
    neighbours: NeighbourState = field(default=None)  # type: ignore[assignment]
    rho: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    _inv: tuple = field(default=(None, None), repr=False, compare=False)

    def __post_init__(self) -> None:
        g = self.geometry
        if self.y is None:
            self.y = np.empty((0, g.dim), np.float32)
        if self.neighbours is None:
            length = list_length(g.density, g.k, g.r)
            base = None if length is None else base_weights(g.density, length, g.r)
            self.neighbours = NeighbourState(length, base, g.exclude_same_group)

    # ------------------------------------------------------------------ storage
    def reserve(self, n: int, spare: bool = False) -> None:
        """Grow the capacity to at least ``n`` rows.

        Growth is geometric by :data:`GROWTH` (amortized O(1) copies per enrolled row);
        ``spare`` adds :func:`spare_rows` past ``n`` (a loaded bank: its first enrollment,
        i.e. every CLI enrollment, then copies nothing).
        """
        cap = self.y.shape[0]
        if n <= cap:
            return
        cap = max(n + (spare_rows(n) if spare else 0), int(cap * (1 + GROWTH)), 16)
        for name, fill in _ROWS:
            old = getattr(self, name)
            new = np.empty((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            new[self.n :] = fill
            setattr(self, name, new)
        self.neighbours.reserve(cap)

    def append(
        self,
        X: np.ndarray,
        grp: np.ndarray,
        dom: np.ndarray,
        added: float,
        close: float = -1.0,
        against: Sequence[tuple[int, np.ndarray | None]] = (),
    ) -> tuple[int, np.ndarray, list[np.ndarray]]:
        """Store validated rows and account for them in the neighbour state.

        Parameters
        ----------
        X : (m, dim) float32
            Validated (and, under cosine, normalized) embeddings.
        grp, dom : (m,) int64
            Group and domain codes.
        added : float
            UNIX time of the enrollment.
        close : float
            Report pairs of a new and an earlier reference within this distance (< 0: none).
        against : sequence of (rows, rho)
            Also score the new rows against the first ``rows`` references with densities
            ``rho`` (``None``: the current ones, i.e. the bank before this append), as
            :meth:`score` does (``score(X, rows, rho)[0]``, to the float32 rounding of the
            products): the forward calibration (:mod:`edgeasd.scoring.forward`). Under cosine
            with neighbour lists the scores come from the products the neighbour update
            computes, so the bank is read once.

        Returns
        -------
        n_old : int
            Rows before the append (the new rows are ``n_old .. n_old+m-1``).
        pairs : (p, 3) float64
            Close pairs: row of the new reference, row of the earlier one, distance.
        scores : list of (m,) float64
            One per ``against`` entry.

        Densities are not refreshed: call :meth:`refresh`.
        """
        m = X.shape[0]
        first, n_old = self.next_id, self.n
        n = n_old + m
        g = self.geometry
        fused = g.metric == "cosine" and self.neighbours.length is not None
        scores = [] if fused else [self.score(X, rows, rho)[0] for rows, rho in against]
        self.reserve(n)
        self.y[n_old:n] = X
        self.ysq[n_old:n] = np.einsum("ij,ij->i", X, X, dtype=np.float64)
        self.ids[n_old:n] = np.arange(first, first + m)
        self.grp[n_old:n], self.dom[n_old:n], self.added[n_old:n] = grp, dom, added
        metric = kernels.METRICS[g.metric]
        fold = None
        if fused and against:
            targets = [(rows, self._weights(rho)) for rows, rho in against]
            scores = [np.full(m, np.inf) for _ in against]
            pos = [np.full(m, -1, np.int64) for _ in against]
            fold = self._folder(n_old, targets, scores, pos)
        pairs = self.neighbours.add(
            self.y, self.ysq, n_old, m, self.ids, self.grp, metric, close, fold
        )
        self.n, self.next_id = n, first + m
        return n_old, pairs, scores

    def _folder(self, n_old: int, targets: list, best: list, pos: list):
        """``fold`` for :meth:`NeighbourState.add`: each block's products into prefix minima.

        ``targets``: (rows, per-reference weights as :meth:`_weights`); ``best``, ``pos``:
        (m,) running minima and their rows, one per target, updated in place as
        :meth:`score`'s batch path folds its blocks (the same expression per entry,
        :func:`kernels.score_from_dots` on the (new rows, block) orientation).
        """
        metric = kernels.METRICS[self.geometry.metric]
        norm = kernels.NORMS[self.geometry.norm]
        ysq = self.ysq

        def fold(g: np.ndarray, a: int, b: int, c0: int) -> None:
            c1 = c0 + g.shape[1]
            for (rows, w), low, at in zip(targets, best, pos, strict=True):
                if c0 >= rows:
                    continue
                c = min(c1, rows)
                part = g if c == c1 else np.ascontiguousarray(g[:, : c - c0])
                i, j = a - n_old, b - n_old
                kernels.score_from_dots(
                    part, ysq[a:b], ysq[c0:c], w[c0:c], c0, metric, norm, low[i:j], at[i:j]
                )

        return fold

    def remove(self, ids: np.ndarray) -> None:
        """Drop the references with ``ids`` (all present); densities are not refreshed."""
        current = self.ids[: self.n]
        keep = ~np.isin(current, ids)
        metric = kernels.METRICS[self.geometry.metric]
        dropped = np.flatnonzero(~keep)
        gone = (self.y[dropped], self.ids[dropped], self.grp[dropped])
        kept = np.flatnonzero(keep)
        for name, _ in _ROWS:
            arr = getattr(self, name)
            arr[: kept.size] = arr[kept]
        self.n = kept.size
        self.neighbours.remove_rows(self.y, self.ysq, keep, gone, self.ids, self.grp, metric)

    def raw_rho(self) -> np.ndarray:
        """Densities before floor and fallback, shape ``(n,)``; NaN: no eligible neighbour."""
        return self.neighbours.rho(self.n)

    def fallback(self, raw: np.ndarray) -> float:
        """Density of references without a neighbour: the median of the others', or neutral."""
        finite = raw[~np.isnan(raw)]
        return float(np.median(finite)) if finite.size else self.geometry.neutral

    def refresh(self) -> bool:
        """Recompute :attr:`rho` from the neighbour state.

        Returns
        -------
        bool
            True when more than one reference is stored and none has an eligible
            neighbour (scores are then plain distances; the caller warns).
        """
        raw = self.raw_rho()
        missing = np.isnan(raw)
        if missing.any():
            raw = np.where(missing, self.fallback(raw), raw)
        self.rho = np.maximum(self.finish(raw)(raw), RHO_EPS)
        return bool(self.n > 1 and missing.all())

    def finish(self, raw: np.ndarray) -> density_rules.Finish:
        """The density rule's row-wise map for this state (``raw``: densities with the
        no-neighbour fallback applied, shape ``(n,)``; :mod:`edgeasd.scoring.density_rules`)."""
        g = self.geometry
        return density_rules.fit(
            g.density_rule,
            g.density_cap,
            raw,
            self.y,
            self.ysq,
            self.grp,
            self.dom,
            g.metric,
            g.condition_version,
        )

    # ------------------------------------------------------------------ scoring
    @property
    def inv_rho(self) -> np.ndarray:
        """``1 / rho``, shape ``(n,)`` (the scoring pass multiplies), cached per ``rho`` array."""
        src, inv = self._inv
        if src is not self.rho:
            inv = 1.0 / self.rho
            self._inv = (self.rho, inv)
        return inv

    def score(
        self, Q: np.ndarray, n: int | None = None, rho: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalized nearest-reference scores of validated queries.

        Parameters
        ----------
        Q : (m, dim) float32
            Validated queries; the set must not be empty.
        n : int, optional
            Score against the first ``n`` rows only (default: all), ...
        rho : (n,) float64, optional
            ... with these densities (default: the current ones): the bank as it was when
            it held those rows (session-forward calibration, :mod:`edgeasd.scoring.forward`).

        Returns
        -------
        scores : (m,) float64
        rows : (m,) int64
            Row of the reference attaining each minimum.
        """
        g = self.geometry
        n = self.n if n is None else n
        w = self._weights(rho)
        rho = self.rho if rho is None else rho
        pos = np.empty(Q.shape[0], np.int64)
        scores = np.empty(Q.shape[0], np.float64)
        metric, norm = kernels.METRICS[g.metric], kernels.NORMS[g.norm]
        if Q.shape[0] < BATCH_MIN or g.metric != "cosine":
            for i in range(Q.shape[0]):
                scores[i], pos[i] = kernels.score_fused(Q[i], self.y, n, rho, metric, norm)
            return scores, pos
        qsq = np.einsum("ij,ij->i", Q, Q, dtype=np.float64)
        if Q.shape[0] == 1 and n >= ONE_PASS_MIN:
            scores[0], pos[0] = kernels.score_one_pass(
                Q[0], self.y, n, float(qsq[0]), self.ysq, w, metric, norm
            )
            return scores, pos
        if Q.shape[0] == 1:  # the daemon's steady state on a small bank: numpy, no numba
            g1 = self.y[:n] @ Q[0]
            scores[0], pos[0] = score_one(g1, float(qsq[0]), self.ysq[:n], w[:n], metric, norm)
            return scores, pos
        scores.fill(np.inf)
        pos.fill(-1)
        # blocks of references, all queries at once: the bank is read once per call, and
        # the (block, m) product stays in cache for the fused normalize-and-min pass
        step = max(BLOCK_MIN, BLOCK_ENTRIES // Q.shape[0])
        Qt = Q.T
        for a in range(0, n, step):
            b = min(n, a + step)
            dots = self.y[a:b] @ Qt
            kernels.score_from_dots_t(
                dots, qsq, self.ysq[a:b], w[a:b], a, metric, norm, scores, pos
            )
        return scores, pos

    def _weights(self, rho: np.ndarray | None) -> np.ndarray:
        """Per-reference factors of the product paths: ``1 / rho`` (ratio) or ``rho``.

        ``rho=None``: the current densities (``1 / rho`` cached, :attr:`inv_rho`); a given
        ``rho`` (a prefix's densities at an earlier time) gets its own ``1 / rho``, computed
        here, with the same IEEE division, so equal densities give equal bits.
        """
        if self.geometry.norm != "ratio":
            return self.rho if rho is None else rho
        return self.inv_rho if rho is None else 1.0 / rho

    # ------------------------------------------------------------------ views
    def names(self, labels: Labels, codes: np.ndarray) -> np.ndarray:
        """Label names of the first ``n`` codes, shape ``(n,)`` str."""
        return np.array(labels.names, dtype=object)[codes[: self.n]].astype(str)
