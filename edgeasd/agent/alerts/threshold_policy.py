"""The threshold policy: the threshold in force under the ``threshold`` section, and its report.

:func:`threshold_for` applies the configured rule to a bank; :func:`threshold_report` adds the
predicted false-alarm rate and, while a condition has too little audio to calibrate on, what
to enroll. The daemon (through :func:`edgeasd.agent.alerts.decision.bank_state`),
``edgeasd status``, ``edgeasd bank summary`` and the operating-point evaluation all read them
here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import DEFAULT_FIXED


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


#: A condition (domain tag) with less enrolled audio than this gets the "enroll more" warning.
#: A condition calibrates itself from its third group on (forward chaining skips the first
#: two, :mod:`edgeasd.scoring.forward`); 5 min = 5 groups of the default 60 s, 3 of them
#: scored. ``python benchmarks/run.py operating_point`` (target enrollment sweep in
#: BENCHMARKS.md, 8 held-out machine/seed sets): with 2 target recordings of 50 s (1.7 min)
#: 7.5 % of later target windows alarmed (53 % in the worst set), with 4 (3.3 min) or 6
#: (5 min) none did.
MIN_CONDITION_MINUTES = 5.0


def threshold_report(bank: ReferenceBank, cfg: Any, hop_seconds: float | None) -> dict[str, Any]:
    """The threshold in force, its rule and its predicted false-alarm rate.

    Parameters
    ----------
    bank : ReferenceBank
    cfg : edgeasd.config.Config
    hop_seconds : float or None
        Step between scored windows (``window.hop_seconds`` or the model's window length):
        converts the per-window rate into false alarms per day and minutes of audio for
        the warning (None, not known: both are None).

    Returns
    -------
    dict
        ``threshold`` (float, or None when there is none), ``rule`` (the configured
        ``threshold.rule``), ``source`` (how it was derived, as :func:`threshold_for`),
        ``predicted_false_alarm_rate`` (per window, or None:
        :func:`edgeasd.scoring.calibrate.predicted_rate` on the bank's forward-chaining
        scores, or its leave-one-group-out ones while there are none),
        ``predicted_false_alarms_per_day`` (that rate times ``86400 / hop_seconds``
        windows, or None) and ``warning`` (None, or what to enroll to calibrate better).
    """
    from edgeasd.scoring.calibrate import predicted_rate

    if hop_seconds is not None and not (np.isfinite(hop_seconds) and hop_seconds > 0):
        raise InputError(f"hop_seconds must be positive, got {hop_seconds!r}")
    threshold, source = threshold_for(bank, cfg)
    rate = None
    if len(bank) and np.isfinite(threshold):
        cal = bank.forward_scores_
        if not np.isfinite(cal).any():  # no forward-chaining scores yet: the LOGO ones
            cal = bank.loo_scores_
        r = predicted_rate(cal, threshold)
        rate = float(r) if np.isfinite(r) else None
    return {
        "threshold": float(threshold) if np.isfinite(threshold) else None,
        "rule": cfg.threshold.rule,
        "source": source,
        "predicted_false_alarm_rate": rate,
        "predicted_false_alarms_per_day": (
            None if rate is None or hop_seconds is None else rate * 86400.0 / hop_seconds
        ),
        "warning": (
            None if hop_seconds is None else _calibration_warning(bank, threshold, hop_seconds)
        ),
    }


def _calibration_warning(bank: ReferenceBank, threshold: float, hop_seconds: float) -> str | None:
    """What to enroll when a condition has too little audio to calibrate on (None: enough)."""
    if len(bank) == 0:
        return "the bank is empty: enroll normal operation (edgeasd enroll --next N, or FILE...)"
    domains, groups = bank.domains_, bank.groups_
    parts = []
    for d in sorted(set(domains.tolist())):
        mask = domains == d
        minutes = np.count_nonzero(mask) * hop_seconds / 60.0
        n_groups = len(set(groups[mask].tolist()))
        if minutes < MIN_CONDITION_MINUTES or n_groups < 2:
            more = max(MIN_CONDITION_MINUTES - minutes, 1.0)
            parts.append(
                f"{n_groups} recording group{'s' if n_groups != 1 else ''} ({minutes:.1f} min) "
                f"of condition {d!r}: enroll at least {more:.0f} more minutes, ideally from a "
                f"different hour (edgeasd enroll --domain {d} ...)"
            )
    if not np.isfinite(threshold):
        parts.append("no threshold yet: scores are not decided")
    return "; ".join(parts) or None
