"""Commissioning per condition, as the daemon's status carries it (``status``, ``bank summary``).

The rule is the scoring layer's (:func:`edgeasd.scoring.forecast.commissioning`): a condition
(domain tag) is *commissioned* once it holds ``MIN_CONDITION_MINUTES`` of enrolled audio in at
least ``MIN_CONDITION_GROUPS`` recordings (one group per recording) and one of its groups was
scored against earlier ones; until then its alerts are *provisional*. This module is the
agent's one entry point to it (:func:`conditions`), as plain dicts for the status snapshot.
"""

from __future__ import annotations

from typing import Any

from edgeasd.scoring.forecast import commissioning


def conditions(bank: Any, hop_seconds: float) -> list[dict[str, Any]]:
    """Commissioning of every condition of ``bank``, sorted by name.

    Returns
    -------
    list of dict
        ``condition``, ``minutes``, ``groups``, ``sessions``, ``scored_minutes``,
        ``minutes_needed``, ``recordings_needed``, ``provisional`` and ``words`` (one plain
        sentence).
    """
    if len(bank) == 0:
        return []
    return [c.as_dict() for c in commissioning(bank, hop_seconds)]
