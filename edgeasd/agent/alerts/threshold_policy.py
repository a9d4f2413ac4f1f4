"""The threshold policy: the threshold in force under the ``threshold`` section, and its report.

:func:`threshold_for` applies the configured rule to a bank; :func:`threshold_report` adds its
state (``ready``, ``unreachable`` with the fix, ``uncalibrated``), the forecast of false alerts
a day after the debounce and the commissioning per condition (both from
:mod:`edgeasd.scoring.forecast`, read from the bank's persisted state), and what to enroll.
The daemon (through :func:`edgeasd.agent.alerts.decision.bank_state`), ``edgeasd status``,
``edgeasd bank summary`` and the operating-point evaluation all read them here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import DEFAULT_FIXED

# MIN_CONDITION_MINUTES re-exported: a condition with less audio has provisional alerts
from edgeasd.scoring.forecast import MIN_CONDITION_MINUTES as MIN_CONDITION_MINUTES
from edgeasd.scoring.forecast import commissioning, forecast


def threshold_for(bank: ReferenceBank, cfg: Any) -> tuple[float, str]:
    """The decision threshold (NaN if none can be derived yet) and where it came from.

    Applies the ``threshold`` section with :meth:`ReferenceBank.calibrate` (``rule``, ``q``,
    ``value``). ``value`` null means, for ``fixed``, the bank's default constant for its
    normalization (:data:`edgeasd.scoring.calibrate.DEFAULT_FIXED`: 3.0 under ``ratio``), and
    for ``auto`` no floor; it is passed explicitly, so that a constant configured earlier and
    saved with the bank does not outlive its removal from the configuration.

    Parameters
    ----------
    bank : ReferenceBank
    cfg : edgeasd.config.Config

    Returns
    -------
    threshold : float
        NaN for a data-driven rule on an empty bank, or one that cannot calibrate yet.
    source : str
        How it was derived, for the status and the alert records.
    """
    t = cfg.threshold
    value = t.value
    if value is None and t.rule == "auto":
        value = -np.inf  # no floor
    elif value is None and np.isfinite(DEFAULT_FIXED[bank.norm]):
        value = float(DEFAULT_FIXED[bank.norm])
    if t.rule != "fixed" and len(bank) == 0:
        return float("nan"), "none: the bank is empty"
    bank.calibrate(rule=t.rule, q=t.q, value=value)
    if t.rule == "fixed":
        return float(bank.threshold_), f"config: threshold.rule fixed, value {bank.threshold_:g}"
    return float(bank.threshold_), f"bank of {len(bank)}: {bank.threshold_rule_}"


def threshold_report(bank: ReferenceBank, cfg: Any, hop_seconds: float | None) -> dict[str, Any]:
    """The threshold in force, its rule, its forecast and the commissioning per condition.

    Parameters
    ----------
    bank : ReferenceBank
    cfg : edgeasd.config.Config
    hop_seconds : float or None
        Step between scored windows (``window.hop_seconds`` or the model's window length):
        converts windows into minutes of audio and a day (None, not known: no forecast and
        no commissioning).

    Returns
    -------
    dict
        ``threshold`` (float, or None when there is none), ``rule`` (the configured
        ``threshold.rule``), ``source`` (how it was derived, as :func:`threshold_for`),
        ``state`` (``"uncalibrated"``, ``"unreachable"``: no score of this bank can exceed
        it, or ``"ready"``), ``forecast``
        (:class:`edgeasd.scoring.forecast.Forecast` as a dict, or None),
        ``predicted_false_alarms_per_day`` (at most so many false *alerts* a day after the
        configured k-of-n debounce: the forecast's bound, None until it is known),
        ``predicted_false_alarm_rate`` (the same per window, or None),
        ``commissioning`` (one :class:`edgeasd.scoring.forecast.ConditionStatus` dict per
        condition), ``provisional`` (conditions whose alerts are provisional) and
        ``warning`` (None, or what to enroll, in plain words).
    """
    if hop_seconds is not None and not (np.isfinite(hop_seconds) and hop_seconds > 0):
        raise InputError(f"hop_seconds must be positive, got {hop_seconds!r}")
    threshold, source = threshold_for(bank, cfg)
    state = "uncalibrated"
    if np.isfinite(threshold):
        state = "unreachable" if threshold >= bank.score_bound_ else "ready"
    fc, conditions = None, []
    if hop_seconds is not None:
        d = cfg.detector
        fc = forecast(bank, threshold, hop_seconds, d.k, d.n)
        conditions = commissioning(bank, hop_seconds)
    # the promise is the bound (forecast module docstring): the estimate is 0 at `auto`
    per_day = None if fc is None or not fc.known else fc.bound_per_day
    return {
        "threshold": float(threshold) if np.isfinite(threshold) else None,
        "rule": cfg.threshold.rule,
        "source": source,
        "state": state,
        "forecast": None if fc is None else fc.as_dict(),
        "predicted_false_alarm_rate": (
            None if per_day is None else per_day * hop_seconds / 86400.0  # type: ignore[operator]
        ),
        "predicted_false_alarms_per_day": per_day,
        "commissioning": [c.as_dict() for c in conditions],
        "provisional": [c.condition for c in conditions if c.provisional],
        "warning": (
            None
            if hop_seconds is None
            else _calibration_warning(bank, threshold, state, conditions)
        ),
    }


def unreachable_fix(threshold: float, bound: float) -> str:
    """The plain-words state of a threshold no score can exceed, with the fix."""
    return (
        f"the threshold {threshold:.4g} can never be exceeded (no score of this bank is above "
        f"{bound:.4g}), so the agent cannot alert: enroll normal audio of other recordings or "
        "sessions of the same machine (a separate group), or set threshold.rule/value"
    )


def _calibration_warning(
    bank: ReferenceBank, threshold: float, state: str, conditions: list
) -> str | None:
    """What to enroll, in plain words (None: nothing)."""
    if len(bank) == 0:
        return "the bank is empty: enroll normal operation (edgeasd enroll --next N, or FILE...)"
    parts = [c.words for c in conditions if c.provisional]
    if state == "unreachable":
        parts.append(unreachable_fix(threshold, bank.score_bound_))
    elif not np.isfinite(threshold):
        one = len(set(bank.groups_.tolist())) == 1
        parts.append(
            "no threshold yet: scores are not decided"
            + (
                "; the bank holds one recording, and the threshold rests on how a recording "
                "scores against the others: enroll a second one (another edgeasd enroll "
                "--next N, or FILE...), ideally from another hour"
                if one
                else ""
            )
        )
    return "; ".join(parts) or None


def report_lines(rep: dict[str, Any] | None) -> list[str]:
    """The report in plain words, one line each: the forecast, then each condition.

    Used by ``edgeasd status`` and ``edgeasd bank summary`` (one wording).
    """
    if not rep:
        return []
    out = []
    if rep.get("forecast"):
        out.append(rep["forecast"]["words"])
    out += [c["words"] for c in rep.get("commissioning") or ()]
    return out
