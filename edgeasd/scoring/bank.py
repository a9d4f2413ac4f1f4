"""The reference bank: enroll normal embeddings, score new ones, calibrate a threshold.

Implements the local-density score normalization of Wilkinghoff et al., "Local
Density-Based Anomaly Score Normalization for Domain Generalization" (IEEE TASLP
2026), following its released code (mean / normalized weights). For the density
modes see :mod:`edgeasd.scoring.density`, for calibration
:mod:`edgeasd.scoring.calibrate`, for the file format :mod:`edgeasd.scoring.store`.

Documented edge cases
---------------------
- Self is excluded from its own neighbours by id, never by sorted position.
- Densities are floored at :data:`RHO_EPS` (1e-10, as scikit-learn's LOF) so exact
  duplicates cannot divide by zero; enrollment reports pairs closer than
  :data:`DUPLICATE_DISTANCE` (log warning + ``last_enroll_report_``).
- A reference without any eligible neighbour (bank of size 1, or only its own group
  under ``exclude_same_group``) takes the median density of the references that
  have one; if none has, the neutral value (1 for ``ratio``, 0 for ``difference``),
  so scores are plain distances.
- An empty bank cannot score (:class:`~edgeasd.errors.BankError`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.errors import BankError, InputError, ModelError
from edgeasd.scoring import calibrate as _cal
from edgeasd.scoring import kernels
from edgeasd.scoring.density import NeighbourState, base_weights, list_length
from edgeasd.scoring.validate import Labels, as_labels, check_embeddings, check_params

log = logging.getLogger(__name__)

#: Floor of every density constant (scikit-learn's LOF uses the same 1e-10).
RHO_EPS = 1e-10
#: Distance A at or below which two references are reported as (near) duplicates.
#: Under cosine A = 1e-6 is an angle of about 0.11 degrees.
DUPLICATE_DISTANCE = 1e-6
#: Queries per call from which cosine scoring takes the BLAS path (``Q @ Y.T``, then
#: one fused normalize-and-min pass). Measured in BENCHMARKS.md ("Fused single-pass
#: loop vs BLAS path"): on a quiet machine OpenBLAS's matrix-vector product beat the
#: fused single-pass loop (``kernels.score_fused``) even for one query at N = 10,000
#: (under heavy load from other processes the loop sometimes won), so the BLAS path is
#: used from 1 query on. It computes A = 0.25 (|q|^2 + |y|^2 - 2 <q, y>), i.e.
#: 0.5 (1 - <q, y>) for unit rows, from float32 products: ~1e-7 absolute distance error.
#: Euclidean always uses the fused loop, since sqrt(|q|^2 + |y|^2 - 2 <q, y>) would
#: amplify that error at small distances.
BATCH_MIN = 1
_METRICS = kernels.METRICS
_NORMS = kernels.NORMS


class ReferenceBank:
    """A bank of normal reference embeddings with local-density normalized scoring.

    Parameters
    ----------
    dim : int
        Embedding dimension.
    metric : {"cosine", "euclidean"}
        ``cosine``: A = 0.5 (1 - cos) in [0, 1], rows L2-normalized on enrollment;
        ``euclidean``: A = 0.25 ||x - y||.
    density : {"knn", "gwrp"}
        Density constant of each reference (see :mod:`edgeasd.scoring.density`).
    k : int
        Neighbours for ``knn`` (K >= N uses all others).
    r : float or None
        GWRP decay in [0, 1] (required for ``gwrp``).
    norm : {"ratio", "difference", "none"}
        ``min_y A/rho``, ``min_y A - rho`` or plain ``min_y A``.
    exclude_same_group : bool
        Ignore same-group references as density neighbours (overlapping windows of
        one recording would otherwise make rho tiny). Default True: chosen by the
        calibration measurement in BENCHMARKS.md.
    """

    def __init__(
        self,
        dim: int,
        metric: str = "cosine",
        density: str = "knn",
        k: int = 1,
        r: float | None = None,
        norm: str = "ratio",
        exclude_same_group: bool = True,
    ) -> None:
        r = check_params(dim, metric, density, k, r, norm)
        self.dim, self.metric, self.density_mode = int(dim), metric, density
        self.k, self.r, self.norm = int(k), r, norm
        self.exclude_same_group = bool(exclude_same_group)
        self.meta: dict[str, Any] = {}
        self.last_enroll_report_: dict[str, Any] = {}
        self._n, self._next_id = 0, 0
        self._y = np.empty((0, self.dim), np.float32)
        self._ids = np.empty(0, np.int64)
        self._grp = np.empty(0, np.int64)
        self._dom = np.empty(0, np.int64)
        self._added = np.empty(0, np.float64)
        self._ysq = np.empty(0, np.float64)
        self._group_labels = Labels()
        self._domain_labels = Labels()
        length = list_length(density, self.k, r)
        base = None if length is None else base_weights(density, length, r)
        self._state = NeighbourState(length, base, self.exclude_same_group)
        self._rho = np.empty(0, np.float64)
        self._calibration = _cal.Calibration()

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"ReferenceBank(dim={self.dim}, metric={self.metric!r}, density="
            f"{self.density_mode!r}, k={self.k}, r={self.r}, norm={self.norm!r}, "
            f"exclude_same_group={self.exclude_same_group}, n={self._n})"
        )

    @property
    def ids(self) -> np.ndarray:
        """Stable reference ids, shape ``(N,)`` int64, increasing."""
        return self._ids[: self._n].copy()

    @property
    def embeddings(self) -> np.ndarray:
        """Stored references, shape ``(N, dim)`` float32 (L2-normalized under cosine)."""
        return self._y[: self._n].copy()

    @property
    def density(self) -> np.ndarray:
        """Density constants used for scoring, shape ``(N,)`` float64, aligned with ``ids``.

        Floored at :data:`RHO_EPS`, with the no-neighbour fallback applied.
        """
        return self._rho.copy()

    @property
    def raw_density(self) -> np.ndarray:
        """Densities before floor and fallback, shape ``(N,)``; NaN: no eligible neighbour."""
        return self._state.rho(self._n)

    @property
    def domains(self) -> np.ndarray:
        """Domain tag of each reference, shape ``(N,)`` str (reporting only)."""
        return np.array(self._domain_labels.names, dtype=object)[self._dom[: self._n]].astype(str)

    @property
    def groups(self) -> np.ndarray:
        """Group (recording/session) of each reference, shape ``(N,)`` str."""
        return np.array(self._group_labels.names, dtype=object)[self._grp[: self._n]].astype(str)

    @property
    def added_at(self) -> np.ndarray:
        """UNIX time each reference was enrolled, shape ``(N,)`` float64."""
        return self._added[: self._n].copy()

    @property
    def neighbour_ids(self) -> np.ndarray:
        """Sorted density neighbours of each reference, shape ``(N, L)`` int64, -1 padded.

        Empty ``(N, 0)`` for the global-mean density (GWRP r = 1).
        """
        if self._state.length is None:
            return np.empty((self._n, 0), np.int64)
        return self._state.neighbour_ids(self._n)

    # ------------------------------------------------------------------ enrollment
    def _reserve(self, n: int) -> None:
        cap = self._y.shape[0]
        if n <= cap:
            return
        cap = max(n, 2 * cap, 16)
        for name, fill in (
            ("_y", 0),
            ("_ids", -1),
            ("_grp", -1),
            ("_dom", -1),
            ("_added", 0),
            ("_ysq", 0),
        ):
            old = getattr(self, name)
            new = np.full((cap, *old.shape[1:]), fill, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)
        self._state.reserve(cap)

    def enroll(
        self,
        X: np.ndarray,
        domain: str | Sequence[str] = "source",
        group: str | int | Sequence[str | int] | None = None,
    ) -> np.ndarray:
        """Add normal reference embeddings; refreshes densities and the threshold.

        Parameters
        ----------
        X : (n, dim) or (dim,) array_like of float
            Embeddings of normal operation; finite, non-zero under cosine.
        domain : str or sequence of n str
            Free-form tag kept for reporting; scoring never uses it.
        group : str, int, sequence of n of them, or None
            Recording/session each row came from. Leave-one-out calibration leaves
            whole groups out, and under ``exclude_same_group`` a reference's density
            ignores its own group. ``None``: each row is a group of its own (the paper's
            formula: every other reference may be a density neighbour). Pass one label
            for rows that are near twins (overlapping windows of one recording).

        Returns
        -------
        (n,) int64
            The new references' ids (stable across removals and save/load).

        Raises
        ------
        InputError
            Bad shape, dimension, NaN/inf, zero vectors, empty batch, bad labels.
            Nothing is enrolled then.
        """
        X = check_embeddings(X, self.dim, self.metric, "X")
        m = X.shape[0]
        first = self._next_id
        domains = as_labels(domain, m, "domain")
        if group is None:  # each row its own group: the paper's leave-one-out density
            group = [f"enroll-{i}" for i in range(first, first + m)]
        groups = as_labels(group, m, "group")
        n_old, n = self._n, self._n + m
        self._reserve(n)
        self._y[n_old:n] = X
        self._ysq[n_old:n] = np.einsum("ij,ij->i", X, X, dtype=np.float64)
        self._ids[n_old:n] = np.arange(first, first + m)
        self._grp[n_old:n] = self._group_labels.codes(groups)
        self._dom[n_old:n] = self._domain_labels.codes(domains)
        self._added[n_old:n] = time.time()
        dist = self._state.add(self._y, n_old, m, self._ids, self._grp, _METRICS[self.metric])
        self._n, self._next_id = n, first + m
        self._refresh()
        self._report_duplicates(dist, n_old)
        return self._ids[n_old:n].copy()

    def _report_duplicates(self, dist: np.ndarray, n_old: int) -> None:
        """Record pairs (new id, other id, A) with A <= DUPLICATE_DISTANCE.

        ``dist[r, c]`` is the distance of row ``r`` to new row ``n_old + c``; each pair is
        reported once, against an earlier row (``r < n_old + c``).
        """
        ids = self._ids[: self._n]
        rows, cols = np.nonzero(dist <= DUPLICATE_DISTANCE)
        pairs = [
            (int(ids[n_old + c]), int(ids[r]), float(dist[r, c]))
            for r, c in zip(rows, cols, strict=True)
            if r < n_old + c
        ]
        self.last_enroll_report_ = {
            "enrolled": int(dist.shape[1]),
            "duplicates": pairs,
            "duplicate_distance": DUPLICATE_DISTANCE,
        }
        if pairs:
            log.warning(
                "%d enrolled embedding(s) duplicate existing references within "
                "A <= %g (first: id %d ~ id %d); their densities are floored at %g",
                len(pairs),
                DUPLICATE_DISTANCE,
                pairs[0][0],
                pairs[0][1],
                RHO_EPS,
            )

    def remove(self, ids: Sequence[int] | np.ndarray) -> None:
        """Remove references by id; only references that had them as neighbours are re-scanned.

        Raises
        ------
        InputError
            An id is not in the bank (nothing is removed then).
        """
        ids = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        current = self._ids[: self._n]
        missing = ids[~np.isin(ids, current)]
        if missing.size:
            raise InputError(
                f"ids not in the bank: {missing[:10].tolist()}",
                help="bank.ids lists the references it holds",
            )
        if ids.size == 0:
            return
        keep = ~np.isin(current, ids)
        metric = _METRICS[self.metric]
        self._state.remove_rows(self._y, keep, ids, self._ids, self._grp, metric)
        kept = np.flatnonzero(keep)
        for name in ("_y", "_ids", "_grp", "_dom", "_added", "_ysq"):
            arr = getattr(self, name)
            arr[: kept.size] = arr[kept]
        self._n = kept.size
        self._refresh()

    def _refresh(self) -> None:
        """Recompute the scoring densities and mark the calibration stale."""
        raw = self._state.rho(self._n)
        missing = np.isnan(raw)
        if missing.any():
            fallback = np.median(raw[~missing]) if (~missing).any() else self._neutral()
            if self._n > 1 and missing.all():
                log.warning(
                    "no reference has a neighbour outside its own group, so scores "
                    "are plain distances; enroll normal audio of another recording or "
                    "session (a separate group)"
                )
            raw = np.where(missing, fallback, raw)
        self._rho = np.maximum(raw, RHO_EPS)
        self._calibration.stale = self._calibration.loo_stale = True

    def _neutral(self) -> float:
        return 0.0 if self.norm == "difference" else 1.0

    # ------------------------------------------------------------------ scoring
    def score(
        self, Q: np.ndarray, return_nearest: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Anomaly scores (higher = more anomalous) of query embeddings.

        Parameters
        ----------
        Q : (m, dim) or (dim,) array_like of float
        return_nearest : bool
            Also return the id of the reference that attains each minimum.

        Returns
        -------
        scores : (m,) float64
        nearest : (m,) int64, only with ``return_nearest``

        Raises
        ------
        BankError
            The bank is empty.
        InputError
            Bad shape, dimension, NaN/inf or zero vectors.
        """
        Q = check_embeddings(Q, self.dim, self.metric, "Q")
        if self._n == 0:
            raise BankError(
                "the reference bank is empty, nothing to score against",
                help="enroll normal recordings first (edgeasd enroll)",
            )
        pos = np.empty(Q.shape[0], np.int64)
        scores = np.empty(Q.shape[0], np.float64)
        metric, norm = _METRICS[self.metric], _NORMS[self.norm]
        if Q.shape[0] < BATCH_MIN or self.metric != "cosine":
            for i in range(Q.shape[0]):
                scores[i], pos[i] = kernels.score_fused(
                    Q[i], self._y, self._n, self._rho, metric, norm
                )
        else:
            qsq = np.einsum("ij,ij->i", Q, Q, dtype=np.float64)
            y = self._y[: self._n]
            step = max(1, (1 << 22) // max(self._n, 1))
            for a in range(0, Q.shape[0], step):
                g = Q[a : a + step] @ y.T
                kernels.score_from_dots(
                    g,
                    qsq[a : a + step],
                    self._ysq[: self._n],
                    self._rho,
                    metric,
                    norm,
                    scores[a : a + step],
                    pos[a : a + step],
                )
        if return_nearest:
            return scores, self._ids[pos]
        return scores

    # ------------------------------------------------------------------ calibration
    def calibrate(
        self, rule: str | None = None, q: float | None = None, value: float | None = None
    ) -> float:
        """Set the decision threshold from leave-one-group-out scores of the references.

        The settings are kept and re-applied automatically after every enrollment or
        removal (lazily, on the next use of ``threshold_``). See
        :mod:`edgeasd.scoring.calibrate` for the rules and the default.

        Parameters
        ----------
        rule : {"auto", "quantile", "gamma", "fixed"}, optional
        q : float in (0, 1), optional
            Quantile / gamma percentile.
        value : float, optional
            Threshold of the ``fixed`` rule (and floor of ``auto``).

        Returns
        -------
        float
            The threshold (NaN if it cannot be derived, e.g. a single group under a
            data-driven rule).
        """
        self._calibration.configure(rule, q, value, self.norm)
        return self.threshold_

    @property
    def threshold_(self) -> float:
        """Decision threshold on scores; recomputed after enrollments and removals."""
        self._ensure_calibrated()
        return self._calibration.threshold

    @property
    def score_bound_(self) -> float:
        """Largest score any query can get (inf: unbounded), from the metric and densities.

        Under cosine every distance is at most 1, so a query's score is at most
        ``min_y f(1, rho_y)``: ``1`` (norm ``none``), ``1 / max(rho)`` (``ratio``) or
        ``1 - max(rho)`` (``difference``). Euclidean distances are unbounded.
        """
        if self.metric != "cosine" or self._n == 0:
            return float("inf")
        top = float(self._rho.max())
        return {"none": 1.0, "ratio": 1.0 / top, "difference": 1.0 - top}[self.norm]

    @property
    def threshold_rule_(self) -> str:
        """Human-readable description of how ``threshold_`` was derived."""
        self._ensure_calibrated()
        return self._calibration.description

    @property
    def loo_scores_(self) -> np.ndarray:
        """Leave-one-group-out score of each reference, shape ``(N,)``.

        NaN where there is no other group, and in banks above
        ``calibrate.MAX_LOO_ROWS`` references for groups outside the sample.
        """
        self._ensure_calibrated()
        return self._calibration.loo.copy()

    @property
    def forward_scores_(self) -> np.ndarray:
        """Forward-chaining score of each reference, shape ``(N,)`` (NaN: not scored).

        See :mod:`edgeasd.scoring.forward`: each group scored against the groups enrolled
        before it; the first group of each domain tag is not scored.
        """
        self._ensure_calibrated()
        return self._calibration.forward.copy()

    def _ensure_calibrated(self) -> None:
        if self._calibration.stale:
            self._calibration.update(self)
            t, bound = self._calibration.threshold, self.score_bound_
            if t >= bound:  # NaN compares False: an uncalibrated bank is not unreachable
                log.warning(
                    "the threshold %.4g can never be exceeded: under %s distances with "
                    "norm %r no score of this bank exceeds %.4g, so it can never alert",
                    t,
                    self.metric,
                    self.norm,
                    bound,
                )

    def decision_function(self, Q: np.ndarray) -> np.ndarray:
        """``score(Q) - threshold_``, shape ``(m,)``: > 0 means anomalous."""
        return self.score(Q) - self.threshold_

    # ------------------------------------------------------------------ model / persistence
    def check_model(self, model_id: str) -> None:
        """Refuse embeddings of another model than the one the bank was built with.

        Records ``model_id`` in ``meta`` when the bank has none yet.

        Raises
        ------
        ModelError
            ``meta["model_id"]`` is set and differs.
        """
        have = self.meta.get("model_id")
        if have is None:
            self.meta["model_id"] = model_id
        elif have != model_id:
            raise ModelError(
                f"the bank was built with model {have}, not {model_id}",
                help="use the model the bank was enrolled with, or enroll a "
                "new bank with this model",
            )

    def save(self, path: str | Path, timeout: float = 10.0) -> None:
        """Write the bank to the file ``path`` atomically, under its write lock.

        ``path`` is a single file; ``<path>.lock`` next to it is the lock file. Waits
        up to ``timeout`` seconds for another writer (BankLockedError after that).
        See :mod:`edgeasd.scoring.store`.
        """
        from edgeasd.scoring import store

        store.save_bank(self, path, timeout)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceBank:
        """Read a bank written by :meth:`save`; raises BankCorruptError on damage."""
        from edgeasd.scoring import store

        return store.load_bank(path)
