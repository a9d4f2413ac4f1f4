"""The threshold side of :class:`~edgeasd.scoring.bank.ReferenceBank`: calibration and its views.

:class:`Calibrated` is a mixin (as scikit-learn's ``OutlierMixin``): it needs
``score(Q)``, ``references_`` (:class:`~edgeasd.scoring.references.ReferenceSet`),
``calibration_`` (:class:`~edgeasd.scoring.calibrate.Calibration`), and the ``metric``,
``norm`` parameters, and gives the bank ``calibrate``, the cached ``threshold_`` and the
scikit-learn views ``score_samples`` / ``decision_function`` / ``offset_``.
"""

from __future__ import annotations

import logging

import numpy as np

from edgeasd.scoring.calibrate import Calibration
from edgeasd.scoring.references import ReferenceSet

# the bank's logger: operators and tests filter its warnings by this name
log = logging.getLogger("edgeasd.scoring.bank")


class Calibrated:
    """Calibration methods and views of a reference bank (see the module docstring)."""

    metric: str
    norm: str
    rule: str
    q: float
    value: float | None
    references_: ReferenceSet
    calibration_: Calibration

    def score(self, Q: np.ndarray) -> np.ndarray:  # pragma: no cover - the bank's
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - the bank's
        raise NotImplementedError

    def score_samples(self, Q: np.ndarray) -> np.ndarray:
        """scikit-learn's meaning: higher = more normal, i.e. ``-score(Q)``, shape ``(m,)``."""
        return -self.score(Q)

    @property
    def offset_(self) -> float:
        """scikit-learn's offset: ``-threshold_`` (see :meth:`decision_function`)."""
        return -self.threshold_

    def decision_function(self, Q: np.ndarray) -> np.ndarray:
        """scikit-learn's meaning: ``score_samples(Q) - offset_ = threshold_ - score(Q)``.

        Shape ``(m,)``; negative means anomalous (the score exceeds the threshold),
        zero is the threshold.
        """
        return self.score_samples(Q) - self.offset_

    # ------------------------------------------------------------------ calibration
    def calibrate(
        self,
        rule: str | None = None,
        q: float | None = None,
        value: float | None = None,
        compute: bool = True,
    ) -> float:
        """Change the threshold rule (``None`` keeps a setting) and calibrate now.

        The settings are kept (as the ``rule``, ``q``, ``value`` parameters) and applied
        again after every enrollment or removal. See :mod:`edgeasd.scoring.calibrate`
        for the rules and the default.

        Parameters
        ----------
        rule : {"auto", "quantile", "gamma", "fixed"}, optional
        q : float in (0, 1), optional
            Quantile / gamma percentile.
        value : float, optional
            Threshold of the ``fixed`` rule (and floor of ``auto``).
        compute : bool
            Compute the threshold now (the O(N² · dim) leave-one-group-out and
            forward-chaining scores, if the bank changed); False defers it to the
            next read of ``threshold_``.

        Returns
        -------
        float
            The threshold (NaN if it cannot be derived, e.g. a single group under a
            data-driven rule, or when ``compute`` is False).
        """
        self.calibration_.configure(rule, q, value, self.norm)
        self.rule, self.q, self.value = (
            self.calibration_.rule,
            self.calibration_.q,
            self.calibration_.value,
        )
        if not compute:
            return float("nan")
        self._ensure_calibrated()
        return self.calibration_.threshold

    @property
    def threshold_(self) -> float:
        """Decision threshold on scores: a cached property.

        Cached until the next ``enroll``/``remove``/``calibrate``. After an ``enroll`` the
        first read is O(N log N): ``enroll`` keeps the forward and session-forward scores
        (:mod:`edgeasd.scoring.calibrate`). After a ``remove``, or under a rule that needs
        leave-one-group-out scores, it replays or computes them, O(N² · dim) (0.1-0.3 s at
        N = 1,000). Call :meth:`calibrate` to pay that at a chosen time.
        """
        self._ensure_calibrated()
        return self.calibration_.threshold

    @property
    def score_bound_(self) -> float:
        """Largest score any query can get (inf: unbounded), from the metric and densities.

        Under cosine every distance is at most 1, so a query's score is at most
        ``min_y f(1, rho_y)``: ``1`` (norm ``none``), ``1 / max(rho)`` (``ratio``) or
        ``1 - max(rho)`` (``difference``). Euclidean distances are unbounded.
        """
        if self.metric != "cosine" or len(self) == 0:
            return float("inf")
        top = float(self.references_.rho.max())
        return {"none": 1.0, "ratio": 1.0 / top, "difference": 1.0 - top}[self.norm]

    @property
    def threshold_rule_(self) -> str:
        """How ``threshold_`` was derived (cached like ``threshold_``)."""
        self._ensure_calibrated()
        return self.calibration_.description

    @property
    def loo_scores_(self) -> np.ndarray:
        """Leave-one-group-out score of each reference, shape ``(N,)`` (cached like ``threshold_``).

        NaN where there is no other group, and in banks above
        ``calibrate.MAX_LOO_ROWS`` references for groups outside the sample. Computed on
        first read when the threshold rule did not need them (O(N² · dim), capped).
        """
        self._ensure_calibrated()
        self.calibration_.ensure_loo(self.references_)
        return self.calibration_.loo.copy()

    @property
    def forward_scores_(self) -> np.ndarray:
        """Forward-chaining score of each reference, shape ``(N,)`` (NaN: not scored).

        See :mod:`edgeasd.scoring.forward`: each group scored against the groups enrolled
        before it; the first group of each domain tag is not scored. Kept up to date by
        ``enroll`` (one scoring pass per new group), saved with the bank.
        """
        self._ensure_calibrated()
        return self.calibration_.forward.copy()

    @property
    def session_forward_scores_(self) -> np.ndarray:
        """Session-forward score of each reference, shape ``(N,)`` (NaN: not scored).

        Each group scored against the bank as it stood when its session began
        (:mod:`edgeasd.scoring.forward`). Kept up to date by ``enroll``, saved with the bank.
        """
        self._ensure_calibrated()
        return self.calibration_.session_forward.copy()

    @property
    def calibration_scores_(self) -> np.ndarray:
        """The scores the ``auto`` threshold and the forecast rest on, shape ``(N,)``.

        See :meth:`edgeasd.scoring.calibrate.Calibration.recent`: per condition its
        session-forward scores if any, else its forward-chaining ones (NaN elsewhere).
        """
        self._ensure_calibrated()
        return self.calibration_.recent(self.references_)[0]

    @property
    def forecast_scores_(self) -> np.ndarray:
        """The evidence the forecast counts, shape ``(N,)``: as :attr:`calibration_scores_`,
        of every scored group instead of the latest ``MAX_FORWARD_GROUPS``.

        The threshold follows the latest groups; the forecast tests it on all the normal
        audio ever scored against earlier recordings, so that the minutes it asks for can be
        enrolled (with the latest 100 groups only, its bound could never fall below 14 a day
        at a 10 s hop: :mod:`edgeasd.scoring.forecast`).
        """
        self._ensure_calibrated()
        return self.calibration_.recent(self.references_, all_groups=True)[0]

    @property
    def forecast_margins_(self) -> np.ndarray:
        """The margin of each :attr:`forecast_scores_` entry, shape ``(N,)`` (NaN outside):
        ``FORWARD_MARGIN`` for session-forward evidence, ``ONE_SESSION_MARGIN`` for the
        forward scores of a condition with one session (:meth:`Calibration.margins`)."""
        self._ensure_calibrated()
        return self.calibration_.margins(self.references_, all_groups=True)

    def _ensure_calibrated(self) -> None:
        if self.calibration_.stale or self.calibration_.forward_stale:
            self.calibration_.update(self.references_)
            t, bound = self.calibration_.threshold, self.score_bound_
            if t >= bound:  # NaN compares False: an uncalibrated bank is not unreachable
                log.warning(
                    "the threshold %.4g can never be exceeded: under %s distances with "
                    "norm %r no score of this bank exceeds %.4g, so it can never alert",
                    t,
                    self.metric,
                    self.norm,
                    bound,
                )
