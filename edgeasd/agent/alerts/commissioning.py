"""Commissioning per condition, in plain words, for ``status`` and ``bank summary``.

The rule belongs to the threshold policy: a condition (domain tag) is *commissioned* once
it holds :data:`MIN_CONDITION_MINUTES` of enrolled audio from at least two recording groups;
until then its alerts are *provisional* (its threshold rests on the other conditions). When
the scoring layer provides its own per-condition rule (``edgeasd.scoring.forecast.
commissioning``, branch ``cond``: it also requires forward-chaining scores), that rule is
used instead and this module only formats it: :func:`conditions` is the one entry point, so
swapping the rule changes nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: A condition with less enrolled audio than this has provisional alerts: with 1-2 target
#: recordings the worst later false-alarm rate reached 53 % in the issue-17 measurements
#: (benchmarks/bench_operating_point.py); 5 min is the minimum at which "Done when" asks for
#: at most 5 % false alarms.
MIN_CONDITION_MINUTES = 5.0
#: Enrollments farther apart than this start a new session (as in the scoring layer).
SESSION_GAP_SECONDS = 3600.0


def _sessions(added: np.ndarray) -> int:
    if added.size == 0:
        return 0
    t = np.sort(added)
    return 1 + int(np.count_nonzero(np.diff(t) > SESSION_GAP_SECONDS))


def _fallback(bank: Any, hop_seconds: float) -> list[dict[str, Any]]:
    """The rule of this module (see the module docstring), one dict per condition."""
    domains = np.asarray(bank.domains_).astype(str)
    groups, added = np.asarray(bank.groups_).astype(str), np.asarray(bank.added_at_)
    out = []
    for d in sorted(set(domains.tolist())):
        mask = domains == d
        minutes = float(np.count_nonzero(mask) * hop_seconds / 60.0)
        n_groups = len(set(groups[mask].tolist()))
        sessions = _sessions(added[mask])
        needed = max(0.0, MIN_CONDITION_MINUTES - minutes)
        provisional = needed > 0 or n_groups < 2
        plural = "s" if sessions != 1 else ""
        if provisional:
            why = (
                f"enroll at least {math.ceil(max(needed, 1.0))} more minute(s) of its normal "
                "operation"
                if needed > 0
                else "enroll one more recording of its normal operation"
            )
            words = (
                f"condition {d!r}: {minutes:.1f} min enrolled in {n_groups} recording group(s), "
                f"{sessions} session{plural}; alerts are provisional: {why}, ideally from "
                f"another hour (edgeasd enroll --domain {d} ...)"
            )
        else:
            words = (
                f"condition {d!r}: commissioned ({minutes:.1f} min enrolled in {n_groups} "
                f"recording groups, {sessions} session{plural})"
            )
        out.append(
            {
                "condition": d,
                "minutes": round(minutes, 2),
                "groups": n_groups,
                "sessions": sessions,
                "minutes_needed": round(needed, 2) if provisional else 0.0,
                "provisional": bool(provisional),
                "words": words,
            }
        )
    return out


def conditions(bank: Any, hop_seconds: float) -> list[dict[str, Any]]:
    """Commissioning of every condition of ``bank``, sorted by name.

    Returns
    -------
    list of dict
        ``condition``, ``minutes``, ``groups``, ``sessions``, ``minutes_needed``,
        ``provisional`` and ``words`` (one plain sentence).
    """
    if len(bank) == 0:
        return []
    try:  # the scoring layer's rule, where it exists
        from edgeasd.scoring.forecast import commissioning
    except ImportError:
        return _fallback(bank, hop_seconds)
    return [c.as_dict() for c in commissioning(bank, hop_seconds)]
