"""The decision: one place that maps a score, the bank's state and the signal to a verdict.

Every path that tells an operator whether a window is normal goes through :func:`decide`:
the daemon's window records and alerts, ``edgeasd score``, the ``enroll`` report,
``bank summary`` and the evaluation's operating points (:func:`label_scores`). The states,
checked in this order:

``no-signal``
    The window carries no information (digital silence, a dead or unplugged microphone,
    NaN samples): it is not scored. A clipped window is *not* no-signal: it is scored and
    flagged ``clipped`` (with its clipped fraction), since a loud fault often clips.
``learning``
    The bank is too small to score against (:func:`learning_reason`: fewer than
    ``scoring.min_references`` references, or a single group under
    ``exclude_same_group``, where densities are meaningless).
``uncalibrated``
    No finite threshold (a NaN or missing threshold never means normal), or one that no
    score of the bank can exceed (the bank's state is then ``unreachable``, with the fix:
    such a threshold cannot alert, so "normal" would be a promise it cannot keep).
``anomalous`` / ``normal``
    The score is strictly above / at or below the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.errors import InputError

if TYPE_CHECKING:
    from edgeasd.audio.quality import Quality
    from edgeasd.config import Config
    from edgeasd.scoring import ReferenceBank

#: Decision states, in the order :func:`decide` checks them (the two verdicts last).
STATES = ("no-signal", "learning", "uncalibrated", "anomalous", "normal")

#: Which state names a file (or any set of windows) in a summary: the first present wins.
SUMMARY_ORDER = ("anomalous", "learning", "uncalibrated", "normal", "no-signal")


@dataclass(frozen=True)
class BankState:
    """What the decision needs to know about the bank and its threshold.

    Attributes
    ----------
    references, groups : int
        Size of the bank, number of distinct groups.
    learning : str or None
        Why the agent cannot score yet, with what to do; None: it can.
    learning_needed : int
        References missing to ``scoring.min_references``.
    threshold : float
        The threshold of the configured rule; NaN when none can be derived.
    threshold_source : str
        How it was derived (rule, bank size).
    warnings : tuple of str
        Conditions an operator must know (an unreachable threshold, ...).
    threshold_rule : str
        The configured ``threshold.rule``.
    predicted_false_alarm_rate : float or None
        At most this many false alerts per window: the forecast's bound
        (:func:`edgeasd.agent.alerts.threshold_policy.threshold_report`); None until known.
    predicted_false_alarms_per_day : float or None
        The same a day at the configured hop (None: hop not known or not known yet).
    calibration_warning : str or None
        What to enroll when a condition has too little audio to calibrate on.
    unreachable : bool
        The threshold is finite but no score of this bank can exceed it.
    report : dict
        The whole :func:`edgeasd.agent.alerts.threshold_policy.threshold_report` (forecast,
        commissioning per condition, provisional conditions).
    """

    references: int
    groups: int
    learning: str | None
    learning_needed: int
    threshold: float
    threshold_source: str
    warnings: tuple[str, ...] = ()
    threshold_rule: str = ""
    predicted_false_alarm_rate: float | None = None
    predicted_false_alarms_per_day: float | None = None
    calibration_warning: str | None = None
    unreachable: bool = False
    report: dict[str, Any] | None = None

    @property
    def calibrated(self) -> bool:
        """Whether a finite threshold exists."""
        return math.isfinite(self.threshold)

    @property
    def state(self) -> str:
        """``"learning"``, ``"uncalibrated"``, ``"unreachable"`` or ``"ready"``.

        Only ``ready`` gives windows a verdict; ``unreachable`` (a threshold no score can
        exceed) is never ``ready``, and its warning says how to fix it.
        """
        if self.learning:
            return "learning"
        if not self.calibrated:
            return "uncalibrated"
        return "unreachable" if self.unreachable else "ready"

    @property
    def provisional(self) -> tuple[str, ...]:
        """Conditions whose alerts are provisional (too little audio enrolled yet)."""
        return tuple((self.report or {}).get("provisional", ()))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (threshold None when NaN)."""
        return {
            "state": self.state,
            "learning": self.learning,
            "learning_needed": self.learning_needed,
            "threshold": self.threshold if self.calibrated else None,
            "threshold_source": self.threshold_source,
            "warnings": list(self.warnings),
            **self.threshold_facts(),
        }

    def threshold_report(self) -> dict[str, Any]:
        """The same dict as :func:`~edgeasd.agent.alerts.threshold_policy.threshold_report`.

        No recomputation.
        """
        if self.report is not None:
            return dict(self.report)
        return {
            "threshold": self.threshold if self.calibrated else None,
            "rule": self.threshold_rule,
            "source": self.threshold_source,
            "predicted_false_alarm_rate": self.predicted_false_alarm_rate,
            "predicted_false_alarms_per_day": self.predicted_false_alarms_per_day,
            "warning": self.calibration_warning,
        }

    def threshold_facts(self) -> dict[str, Any]:
        """The threshold's rule, its forecast (false alerts a day, None until known) and the
        conditions whose alerts are provisional (None: none), as every alert states them."""
        per_day = self.predicted_false_alarms_per_day
        rate = self.predicted_false_alarm_rate
        return {
            "threshold_rule": self.threshold_rule,
            "predicted_false_alarm_rate": None if rate is None else round(rate, 6),
            "predicted_false_alarms_per_day": None if per_day is None else round(per_day, 3),
            "provisional_conditions": list(self.provisional) or None,
        }


@dataclass(frozen=True)
class Decision:
    """The verdict on one window.

    Attributes
    ----------
    state : str
        One of :data:`STATES`.
    score : float or None
        The window's score (None when not scored).
    threshold : float or None
        The threshold it was compared with (None: none in force).
    clipped : bool
        More than ``quality.clip_fraction`` of the window's samples are clipped.
    clip_fraction : float or None
        The clipped fraction (when ``clipped``).
    reason : str or None
        Why there is no verdict (no-signal: the quality status; learning: what to do).
    """

    state: str
    score: float | None = None
    threshold: float | None = None
    clipped: bool = False
    clip_fraction: float | None = None
    reason: str | None = None

    def fields(self) -> dict[str, Any]:
        """Fields of a window record: ``decision``, ``threshold`` and the flags, if set."""
        out: dict[str, Any] = {"decision": self.state}
        if self.state in ("normal", "anomalous", "uncalibrated"):
            out["threshold"] = self.threshold
        if self.clipped:
            out.update(clipped=True, clip_fraction=round(float(self.clip_fraction or 0), 6))
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @property
    def flags(self) -> dict[str, Any] | None:
        """The flags an alert triggered by this window carries (None: no flag)."""
        if not self.clipped:
            return None
        return {"clipped": True, "clip_fraction": round(float(self.clip_fraction or 0), 6)}


#: What a bank of one recording group asks for before it can score: a second recording of
#: at least a minute (the group size of earlier releases; more than one window).
SECOND_RECORDING_SECONDS = 60.0


def learning_reason(
    references: int,
    groups: int,
    *,
    min_references: int,
    exclude_same_group: bool,
    group_seconds: float,
    hop_seconds: float | None,
) -> tuple[int, str | None]:
    """Whether the bank is still learning, and what to enroll.

    Parameters
    ----------
    references, groups : int
        Size of the bank and number of distinct groups in it.
    min_references : int
        ``scoring.min_references``.
    exclude_same_group : bool
        The bank's setting: densities come from other groups only.
    group_seconds : float
        ``enrollment.group_seconds``.
    hop_seconds : float or None
        Step between windows, to turn seconds into an ``--next N`` count (None: not known).

    Returns
    -------
    needed : int
        References missing to ``min_references``.
    reason : str or None
        None when the bank may score.
    """
    needed = max(0, min_references - references)
    if needed:
        return needed, (
            f"{needed} more normal windows needed (edgeasd enroll --next N, or enroll FILE...)"
        )
    if exclude_same_group and groups < 2:
        # each reference's density comes from other groups: with one (a first recording,
        # one group at the default enrollment.group_seconds), scores are raw distances and
        # the threshold cannot be calibrated. Any further enrollment is a new group; ask for
        # a minute of it (capped at a group), so that it is more than a single window.
        seconds = min(group_seconds, SECOND_RECORDING_SECONDS)
        n = str(max(1, math.ceil(seconds / hop_seconds))) if hop_seconds else "N"
        return needed, (
            f"one recording enrolled: enroll a second recording of at least {seconds:g} "
            f"seconds of normal operation (edgeasd enroll --next {n}, or enroll FILE...), "
            "ideally from another hour"
        )
    return needed, None


def bank_state(bank: ReferenceBank, config: Config, hop_seconds: float | None = None) -> BankState:
    """The bank's state under the configured rules (the threshold of ``config.threshold``).

    Parameters
    ----------
    bank : edgeasd.scoring.ReferenceBank
    config : edgeasd.config.Config
    hop_seconds : float, optional
        Step between windows (for the ``--next N`` advice); default
        ``window.hop_seconds``, else ``window.seconds``.
    """
    from edgeasd.agent.alerts.threshold_policy import threshold_report, unreachable_fix
    from edgeasd.agent.enrollment import bank_lifecycle

    hop = hop_seconds or config.window.hop_seconds or config.window.seconds
    n_groups = len(set(bank.groups_.tolist())) if len(bank) else 0
    needed, reason = learning_reason(
        len(bank),
        n_groups,
        min_references=config.scoring.min_references,
        exclude_same_group=bank.exclude_same_group,
        group_seconds=config.enrollment.group_seconds,
        hop_seconds=hop,
    )
    report = threshold_report(bank, config, hop)
    threshold = math.nan if report["threshold"] is None else report["threshold"]
    source = report["source"]
    warnings = []
    unreachable = report["state"] == "unreachable"
    if unreachable:
        warnings.append(unreachable_fix(threshold, bank.score_bound_))
    mismatch = bank_lifecycle.settings_mismatch(bank, config.scoring)
    if mismatch:
        warnings.append(mismatch)
    return BankState(
        references=len(bank),
        groups=n_groups,
        learning=reason,
        learning_needed=needed,
        threshold=float(threshold),
        threshold_source=source,
        warnings=tuple(warnings),
        threshold_rule=report["rule"],
        predicted_false_alarm_rate=report["predicted_false_alarm_rate"],
        predicted_false_alarms_per_day=report["predicted_false_alarms_per_day"],
        calibration_warning=report["warning"],
        unreachable=unreachable,
        report=report,
    )


def decide(score: float | None, state: BankState, quality: Quality | None = None) -> Decision:
    """The verdict on one window.

    Parameters
    ----------
    score : float or None
        The window's score; may be None when the verdict does not need it (no signal,
        learning, uncalibrated).
    state : BankState
    quality : edgeasd.audio.quality.Quality, optional
        The window's signal quality (None: not assessed, e.g. precomputed embeddings).

    Returns
    -------
    Decision

    Raises
    ------
    InputError
        A verdict needs a score and ``score`` is None or NaN.
    """
    clipped = bool(quality is not None and quality.clipped)
    flags = {"clipped": clipped, "clip_fraction": quality.clip_fraction if clipped else None}
    if quality is not None and not quality.scorable:
        return Decision("no-signal", reason=quality.status)
    score = None if score is None else float(score)
    if state.learning:
        return Decision("learning", score, reason=state.learning, **flags)
    if not state.calibrated:
        return Decision("uncalibrated", score, None, reason=state.threshold_source, **flags)
    if state.unreachable:
        return Decision("uncalibrated", score, state.threshold, reason=state.warnings[0], **flags)
    if score is None or math.isnan(score):
        raise InputError(f"a verdict needs a score, got {score}")
    verdict = "anomalous" if score > state.threshold else "normal"
    return Decision(verdict, score, state.threshold, **flags)


def summarize(states: list[str]) -> str:
    """The state that names a set of windows (a file): the first of :data:`SUMMARY_ORDER`."""
    for state in SUMMARY_ORDER:
        if state in states:
            return state
    return "no-signal"


def label_scores(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Verdicts of many scores against one threshold (the evaluation's operating points).

    Parameters
    ----------
    scores : np.ndarray, shape (n,)
    threshold : float
        NaN or infinite: every label is ``"uncalibrated"``.

    Returns
    -------
    np.ndarray, shape (n,), str
        ``"anomalous"``, ``"normal"`` or ``"uncalibrated"``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not math.isfinite(threshold):
        return np.full(scores.shape, "uncalibrated", dtype=object)
    return np.where(scores > threshold, "anomalous", "normal").astype(object)
