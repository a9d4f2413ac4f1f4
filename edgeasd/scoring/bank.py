"""The reference bank: enroll normal embeddings, score new ones, calibrate a threshold.

Implements the local-density score normalization of Wilkinghoff et al., "Local
Density-Based Anomaly Score Normalization for Domain Generalization" (IEEE TASLP
2026), following its released code (mean / normalized weights). For the density
modes see :mod:`edgeasd.scoring.density`, for calibration
:mod:`edgeasd.scoring.calibrate` (and :mod:`edgeasd.scoring.calibration_mixin`, the bank's
calibration methods), for the file format :mod:`edgeasd.scoring.store` (``save_bank``,
``load_bank``: persistence imports the bank, the bank knows nothing of files). The fitted
state is one :class:`~edgeasd.scoring.references.ReferenceSet`, ``bank.references_``.

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
from typing import Any

import numpy as np

from edgeasd.errors import BankError, InputError
from edgeasd.model_check import require_compatible
from edgeasd.scoring import calibrate as _cal
from edgeasd.scoring import forward as _fwd
from edgeasd.scoring.calibration_mixin import Calibrated
from edgeasd.scoring.density import MAX_PAIRS
from edgeasd.scoring.references import RHO_EPS, Geometry, ReferenceSet
from edgeasd.scoring.validate import as_labels, check_embeddings

log = logging.getLogger(__name__)

#: Distance A at or below which two references are reported as (near) duplicates.
#: Under cosine A = 1e-6 is an angle of about 0.11 degrees.
DUPLICATE_DISTANCE = 1e-6
#: Constructor parameters that shape distances and densities (fixed once enrolled).
_GEOMETRY = (
    "dim",
    "metric",
    "density",
    "k",
    "r",
    "norm",
    "exclude_same_group",
    "density_cap",
    "density_rule",
)
#: Constructor parameters of the threshold rule (may change at any time).
_CALIBRATION = ("rule", "q", "value")


class ReferenceBank(Calibrated):
    """A bank of normal reference embeddings with local-density normalized scoring.

    Follows the scikit-learn estimator conventions: constructor parameters are stored
    under their own names (:meth:`get_params` / :meth:`set_params`); what is learned
    from enrolled data ends with an underscore (``ids_``, ``embeddings_``, ``density_``,
    ``threshold_``, ...). ``enroll`` and ``score`` are the domain's verbs (``fit`` would
    suggest a rebuild from scratch; enrollment is incremental).

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
    density_cap : float or None
        Factor of the ``cap`` rule: every density cut at this many times the bank's median
        density (:func:`edgeasd.scoring.density_rules.capped`).
    density_rule : {"paper", "cap", "condition"} or None
        How the raw densities are finished (:mod:`edgeasd.scoring.density_rules`). ``None``
        (the estimator's default): ``cap`` when ``density_cap`` is given, else ``paper``, the
        paper's exact rule. The agent's configuration defaults to
        :data:`edgeasd.scoring.density_rules.DEFAULT_DENSITY_RULE` (measured there).
    rule : {"auto", "quantile", "gamma", "fixed"}
        Threshold rule (see :mod:`edgeasd.scoring.calibrate`, default there).
    q : float in (0, 1)
        Quantile / gamma percentile of the ``quantile`` and ``gamma`` rules.
    value : float or None
        Threshold of the ``fixed`` rule (default per norm) and floor of ``auto``.
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
        density_cap: float | None = None,
        density_rule: str | None = None,
        rule: str = _cal.DEFAULT_RULE,
        q: float = _cal.DEFAULT_Q,
        value: float | None = None,
    ) -> None:
        geometry = Geometry(
            dim, metric, density, k, r, norm, exclude_same_group, density_cap, density_rule
        )
        self.dim, self.metric, self.density = geometry.dim, metric, density
        self.k, self.r, self.norm = geometry.k, geometry.r, norm
        self.exclude_same_group = geometry.exclude_same_group
        self.density_cap = geometry.density_cap
        self.density_rule = geometry.density_rule
        self.calibration_ = _cal.Calibration()
        self.calibration_.configure(rule, q, value, norm)
        self.rule, self.q, self.value = rule, self.calibration_.q, self.calibration_.value
        self.meta: dict[str, Any] = {}
        self.last_enroll_report_: dict[str, Any] = {}
        self.references_ = ReferenceSet(geometry)

    @classmethod
    def from_references(
        cls,
        references: ReferenceSet,
        calibration: _cal.Calibration,
        meta: dict[str, Any],
    ) -> ReferenceBank:
        """A bank around restored state (used by :mod:`edgeasd.scoring.serialize`).

        Refreshes the densities from the neighbour state; ``calibration`` is kept as is.
        """
        g = references.geometry
        bank = cls(
            g.dim,
            g.metric,
            g.density,
            g.k,
            g.r,
            g.norm,
            g.exclude_same_group,
            g.density_cap,
            g.density_rule,
        )
        bank.references_ = references
        bank._refresh()
        bank.calibration_, bank.meta = calibration, meta
        bank.rule, bank.q, bank.value = calibration.rule, calibration.q, calibration.value
        return bank

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters by name (scikit-learn convention)."""
        return {name: getattr(self, name) for name in _GEOMETRY + _CALIBRATION}

    def set_params(self, **params: Any) -> ReferenceBank:
        """Change constructor parameters; returns the bank.

        The calibration settings (``rule``, ``q``, ``value``) may change at any time (the
        threshold is recomputed on next use). The others shape the stored densities and
        can only change while the bank is empty.

        Raises
        ------
        InputError
            Unknown parameter, a bad value, or a density parameter of a non-empty bank.
        """
        unknown = set(params) - set(_GEOMETRY + _CALIBRATION)
        if unknown:
            raise InputError(f"unknown ReferenceBank parameter(s) {sorted(unknown)}")
        geometry = {k: v for k, v in params.items() if k in _GEOMETRY}
        if geometry:
            if len(self):
                raise InputError(
                    f"cannot change {sorted(geometry)} of a bank holding references",
                    help="build a new bank (edgeasd bank rebuild) with the new settings",
                )
            base = self.get_params()
            if "density_rule" not in geometry and base["density_rule"] in ("paper", "cap"):
                base["density_rule"] = None  # inferred again from the new density_cap
            fresh = type(self)(**{**base, **geometry})
            fresh.meta = self.meta
            self.__dict__.update(fresh.__dict__)
        cal = {k: v for k, v in params.items() if k in _CALIBRATION}
        if cal:
            self.calibrate(**cal, compute=False)
        return self

    # ------------------------------------------------------------------ fitted views
    def __len__(self) -> int:
        return self.references_.n

    def __repr__(self) -> str:
        return (
            f"ReferenceBank(dim={self.dim}, metric={self.metric!r}, density="
            f"{self.density!r}, k={self.k}, r={self.r}, norm={self.norm!r}, "
            f"exclude_same_group={self.exclude_same_group}, density_cap={self.density_cap}, "
            f"density_rule={self.density_rule!r}, "
            f"rule={self.rule!r}, "
            f"n={len(self)})"
        )

    @property
    def ids_(self) -> np.ndarray:
        """Stable reference ids, shape ``(N,)`` int64, increasing."""
        return self.references_.ids[: len(self)].copy()

    @property
    def embeddings_(self) -> np.ndarray:
        """Stored references, shape ``(N, dim)`` float32 (L2-normalized under cosine)."""
        return self.references_.y[: len(self)].copy()

    @property
    def density_(self) -> np.ndarray:
        """Density constants used for scoring, shape ``(N,)`` float64, aligned with ``ids_``.

        Floored at :data:`RHO_EPS`, with the no-neighbour fallback applied.
        """
        return self.references_.rho.copy()

    @property
    def raw_density_(self) -> np.ndarray:
        """Densities before floor and fallback, shape ``(N,)``; NaN: no eligible neighbour."""
        return self.references_.raw_rho()

    @property
    def domains_(self) -> np.ndarray:
        """Domain tag of each reference, shape ``(N,)`` str (reporting only)."""
        ref = self.references_
        return ref.names(ref.domain_labels, ref.dom)

    @property
    def groups_(self) -> np.ndarray:
        """Group (recording/session) of each reference, shape ``(N,)`` str."""
        ref = self.references_
        return ref.names(ref.group_labels, ref.grp)

    @property
    def added_at_(self) -> np.ndarray:
        """UNIX time each reference was enrolled, shape ``(N,)`` float64."""
        return self.references_.added[: len(self)].copy()

    @property
    def neighbour_ids_(self) -> np.ndarray:
        """Sorted density neighbours of each reference, shape ``(N, L)`` int64, -1 padded.

        Empty ``(N, 0)`` for the global-mean density (GWRP r = 1).
        """
        state = self.references_.neighbours
        if state.length is None:
            return np.empty((len(self), 0), np.int64)
        return state.neighbour_ids(len(self))

    # ------------------------------------------------------------------ enrollment
    def enroll(
        self,
        X: np.ndarray,
        domain: str | Sequence[str] = "source",
        group: str | int | Sequence[str | int] | None = None,
        at: float | None = None,
    ) -> np.ndarray:
        """Add normal reference embeddings; refreshes densities, marks the threshold stale.

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
        at : float, optional
            UNIX time of the audio (default: now). Enrollments more than
            :data:`edgeasd.scoring.forward.SESSION_GAP_SECONDS` apart are different sessions
            for the calibration (replays and evaluations pass the recording's time).

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
        ref = self.references_
        X = check_embeddings(X, self.dim, self.metric, "X")
        now = time.time() if at is None else float(at)
        if not np.isfinite(now):
            raise InputError(f"at must be a finite UNIX time, got {at!r}")
        m = X.shape[0]
        first = ref.next_id
        domains = as_labels(domain, m, "domain")
        if group is None:  # each row its own group: the paper's leave-one-out density
            group = [f"enroll-{i}" for i in range(first, first + m)]
        groups = as_labels(group, m, "group")
        known = len(ref.group_labels.names)
        grp, dom = ref.group_labels.codes(groups), ref.domain_labels.codes(domains)
        n_start, cal = ref.n, self.calibration_
        # groups in their order in the batch; each appended (and forward-scored against the
        # bank before it) in turn, as the from-scratch replay does. Into an existing group,
        # or with a group's rows not contiguous, the batch is appended at once and the
        # forward scores are replayed on next use.
        cuts = np.flatnonzero(np.diff(grp)) + 1
        starts = np.concatenate([[0], cuts]).astype(np.int64)
        ends = np.append(cuts, m).astype(np.int64)
        incremental = (
            not cal.forward_stale
            and cal.forward.shape == (n_start,)
            and np.all(grp >= known)
            and np.unique(grp).size == starts.size
        )
        if not incremental:
            starts, ends = np.array([0]), np.array([m])
            cal.forward_stale = True
        scores, session, close = [], [], []
        for a, b in zip(starts, ends, strict=True):
            if incremental:
                cal.session.advance(ref, now)
                f, g = _fwd.score_group(ref, cal.session, X[a:b], int(dom[a]))
                scores.append(f)
                session.append(g)
            _, pairs = ref.append(X[a:b], grp[a:b], dom[a:b], now, DUPLICATE_DISTANCE)
            ref.refresh()
            close.append(pairs)
        if incremental:
            cal.forward = np.concatenate([cal.forward, *scores])
            cal.session_forward = np.concatenate([cal.session_forward, *session])
        self._refresh()
        self._report_duplicates(np.concatenate(close), m)
        return ref.ids[n_start : ref.n].copy()

    def _report_duplicates(self, close: np.ndarray, m: int) -> None:
        """Record pairs (new id, other id, A) with A <= DUPLICATE_DISTANCE.

        ``close`` holds (row of the new reference, row of an earlier one, A), each pair
        once, rows of the whole set (the pairs of each :meth:`ReferenceSet.append` of
        one enrollment, concatenated), for ``m`` enrolled rows. Reported in the order of
        one append of the whole batch (by earlier row, then new row), at most
        :data:`edgeasd.scoring.density.MAX_PAIRS`.
        """
        ids = self.references_.ids
        order = np.lexsort((close[:, 0], close[:, 1]))[:MAX_PAIRS]
        pairs = [
            (int(ids[int(r)]), int(ids[int(c)]), float(d)) for r, c, d in close[order].tolist()
        ]
        self.last_enroll_report_ = {
            "enrolled": int(m),
            "duplicates": pairs,
            "duplicate_distance": DUPLICATE_DISTANCE,
        }
        if pairs:  # counted per enrolled embedding, not per pair (one may have many twins)
            log.warning(
                "%d of %d enrolled embedding(s) duplicate %d earlier reference(s) within "
                "A <= %g (first: id %d ~ id %d); their densities are floored at %g",
                len({p[0] for p in pairs}),
                int(m),
                len({p[1] for p in pairs}),
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
        missing = ids[~np.isin(ids, self.references_.ids[: len(self)])]
        if missing.size:
            raise InputError(
                f"ids not in the bank: {missing[:10].tolist()}",
                help="bank.ids_ lists the references it holds",
            )
        if ids.size == 0:
            return
        self.references_.remove(ids)
        self.calibration_.forward_stale = True  # later groups' scores change: replay
        self._refresh()

    def _refresh(self) -> None:
        """Recompute the scoring densities and mark the calibration stale."""
        if self.references_.refresh():
            log.warning(
                "no reference has a neighbour outside its own group, so scores "
                "are plain distances; enroll normal audio of another recording or "
                "session (a separate group)"
            )
        self.calibration_.stale = self.calibration_.loo_stale = True
        n = len(self)
        if self.calibration_.forward.shape != (n,) or self.calibration_.session_forward.shape != (
            n,
        ):
            self.calibration_.forward_stale = True

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
        if len(self) == 0:
            raise BankError(
                "the reference bank is empty, nothing to score against",
                help="enroll normal recordings first (edgeasd enroll)",
            )
        scores, pos = self.references_.score(Q)
        if return_nearest:
            return scores, self.references_.ids[pos]
        return scores

    # ------------------------------------------------------------------ model
    def claim_model(self, model_id: str) -> None:
        """Record ``model_id`` in ``meta`` when the bank has none; else refuse another model.

        The rule (the same id, nothing else: an id alone carries no compatible ids) is
        :func:`edgeasd.model_check.require_compatible`, the one the agent applies too.

        Raises
        ------
        ModelError
            ``meta["model_id"]`` is set and is not ``model_id``.
        """
        have = self.meta.get("model_id")
        if have is None:
            self.meta["model_id"] = model_id
        else:
            require_compatible(have, model_id)
