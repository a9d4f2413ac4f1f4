"""What the bank's calibration can promise: commissioning per condition and false alerts a day.

Both are computed from the bank's persisted state alone (references, their domain tags,
group codes, enrollment times and forward-chaining scores), so ``status``, ``bank summary``
and the daemon read them without any distance computation: O(N log N).

Commissioning (:func:`commissioning`)
-------------------------------------
Per condition (``--domain`` tag): minutes and sessions enrolled, how much of that audio was
scored against earlier recordings (forward chaining), the minutes and recordings still
needed, and whether its alerts are *provisional*. A condition is commissioned once it holds
:data:`MIN_CONDITION_MINUTES` of audio in at least
:data:`edgeasd.scoring.calibrate.MIN_CONDITION_GROUPS` recording groups (one group per
recording, ``enrollment.group_seconds``) and at least one of its groups was scored against
earlier ones; until then its own scores do not set the threshold (the calibration's rule, the
same constant), the threshold comes from the other conditions and its alerts are
provisional (issue 17: with 1-2 target recordings the worst later false-alarm rate reached
53 %).

Forecast (:func:`forecast`)
---------------------------
False **alerts** a day after the detector's k-of-n debounce, not windows. The calibration's
evidence is the scores the ``auto`` threshold rests on (session-forward, else forward-chaining:
:meth:`edgeasd.scoring.calibrate.Calibration.recent`): each is a normal window the agent met
later than the references before it. Their windows are taken group by group in time order,
scaled by the margin the ``auto`` rule assumes between them and later scores (per score:
:meth:`edgeasd.scoring.calibrate.Calibration.margins`), and run through the same k-of-n
debounce; an episode start is a false alert. The threshold rests on the latest
:data:`edgeasd.scoring.calibrate.MAX_FORWARD_GROUPS` scored groups; the forecast counts
the scored windows of every group (``forecast_scores_``), so that what it asks for can be
enrolled. Of ``W`` scored windows with ``E`` episode
starts, the expected rate is ``E / W`` per window and the one-sided bound
``(1 + E) / (W + 1)`` (the conformal correction; it does not assume windows independent).
A day holds ``86400 / hop`` windows. The forecast is stated as a number only once its bound
is at most :data:`USEFUL_PER_DAY` a day; before that it is "not known yet", with the minutes
of scored audio that would make it known, in plain words. The bound needs about a day of
scored audio with the default detector (1 of 1): that is what the evidence supports, and it
is said so instead of printing hundreds a day.

What a known forecast promises is its **bound**, "at most" so many a day, and only while the
machine sounds as it did in the scored audio. The estimate ``E / W`` is 0 by construction at
the ``auto`` threshold (it lies above every margin-scaled evidence score), and on the
operating-point protocol a later session whose sound drifted above the evidence alerted
regardless (``python benchmarks/run.py threshold_rules``, BENCHMARKS.md "The forecast's
estimate where the protocol can count false alerts": below the operating threshold the
estimate was within 2x of the counted false alerts in 1-4 of 8 held-out conditions). So the
words lead with the bound, name the estimate only when it is not 0, and say what a change in
the machine's sound does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeasd.scoring.calibrate import MIN_CONDITION_GROUPS
from edgeasd.scoring.forward import SESSION_GAP_SECONDS

#: A condition with less enrolled audio than this has provisional alerts. Measured with
#: ``python benchmarks/run.py operating_point`` (target enrollment sweep, BENCHMARKS.md):
#: under the density cap, with 1 target recording of 50 s the worst later target false-alarm
#: rate was 53 %; with 2 (1.7 min) and more, 0 % on the choice sets. 5 min = 5 groups of the
#: default 60 s; the held-out figures are in BENCHMARKS.md.
MIN_CONDITION_MINUTES = 5.0
#: The forecast is stated as a number once its bound is at most this many false alerts a day.
USEFUL_PER_DAY = 1.0


@dataclass(frozen=True)
class ConditionStatus:
    """Commissioning of one condition (domain tag).

    Attributes
    ----------
    condition : str
    minutes : float
        Audio enrolled (references x hop).
    groups, sessions : int
        Recording groups, and sessions (enrollments :data:`SESSION_GAP_SECONDS` apart).
    scored_minutes : float
        Audio of its groups scored against earlier recordings (forward chaining).
    minutes_needed : float
        More minutes to enroll before its alerts stop being provisional (0: none).
    recordings_needed : int
        More recordings (recording groups) to enroll before then (0: none).
    provisional : bool
        Its alerts rest on other conditions' calibration (see the module docstring).
    words : str
        The status in plain words.
    """

    condition: str
    minutes: float
    groups: int
    sessions: int
    scored_minutes: float
    minutes_needed: float
    recordings_needed: int
    provisional: bool
    words: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class Forecast:
    """False alerts a day after the debounce, as far as the calibration supports it.

    Attributes
    ----------
    known : bool
        The bound is at most :data:`USEFUL_PER_DAY`.
    per_day : float or None
        Expected false alerts a day (None: not known yet).
    bound_per_day : float or None
        One-sided bound (None: no scored window at all).
    scored_minutes : float
        Audio the forecast rests on.
    minutes_needed : float
        More scored minutes for a known forecast (0 when known).
    words : str
        The forecast in plain words.
    """

    known: bool
    per_day: float | None
    bound_per_day: float | None
    scored_minutes: float
    minutes_needed: float
    words: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def _sessions(added: np.ndarray) -> int:
    if added.size == 0:
        return 0
    t = np.sort(added)
    return 1 + int(np.count_nonzero(np.diff(t) > SESSION_GAP_SECONDS))


def commissioning(bank: Any, hop_seconds: float) -> list[ConditionStatus]:
    """Commissioning of every condition of ``bank`` (a ``ReferenceBank``), sorted by name.

    Reads the persisted forward-chaining scores (``bank.forward_scores_``; computed only
    for a bank saved before they were kept).
    """
    n = len(bank)
    if n == 0:
        return []
    domains, groups, added = bank.domains_, bank.groups_, bank.added_at_
    forward = bank.forward_scores_
    minute = hop_seconds / 60.0
    out = []
    for d in sorted(set(domains.tolist())):
        mask = domains == d
        minutes = float(np.count_nonzero(mask) * minute)
        scored = float(np.count_nonzero(mask & np.isfinite(forward)) * minute)
        n_groups = len(set(groups[mask].tolist()))
        sessions = _sessions(added[mask])
        needed = max(0.0, MIN_CONDITION_MINUTES - minutes)
        recordings = max(0, MIN_CONDITION_GROUPS - n_groups)
        provisional = bool(needed > 0 or recordings > 0 or scored == 0)
        if provisional:
            recordings = max(recordings, 1 if scored == 0 else 0)
            more = math.ceil(max(needed, minute)) if needed > 0 else 0
            amount = " in ".join(
                x
                for x in (
                    f"at least {more} more minute{'s' if more > 1 else ''}" if more else "",
                    f"{recordings} more recording{'s' if recordings > 1 else ''}"
                    if recordings
                    else "",
                )
                if x
            )
            why = f"enroll {amount} of its normal operation"
            words = (
                f"condition {d!r}: {minutes:.1f} min enrolled in {n_groups} recording "
                f"group{'s' if n_groups != 1 else ''}, {sessions} session"
                f"{'s' if sessions != 1 else ''}; alerts are provisional: {why}, ideally from "
                f"another hour (edgeasd enroll --domain {d} ...)"
            )
        else:
            words = (
                f"condition {d!r}: commissioned ({minutes:.1f} min enrolled in {n_groups} "
                f"recording groups, {sessions} session{'s' if sessions != 1 else ''}; "
                f"{scored:.1f} min scored against earlier recordings)"
            )
        out.append(
            ConditionStatus(
                d,
                minutes,
                n_groups,
                sessions,
                scored,
                needed if provisional else 0.0,
                recordings if provisional else 0,
                provisional,
                words,
            )
        )
    return out


def debounced_starts(exceed: np.ndarray, k: int, n: int) -> int:
    """Alert episodes a k-of-n debounce starts on a sequence of exceedances.

    Parameters
    ----------
    exceed : (W,) bool
        Windows above the threshold, in time order.
    k, n : int
        At least ``k`` of the last ``n`` windows above starts an episode; fewer ends it.
    """
    if exceed.size == 0:
        return 0
    count = np.convolve(exceed.astype(np.int64), np.ones(n, np.int64))[: exceed.size]
    on = count >= k
    return int(np.count_nonzero(on & ~np.r_[False, on[:-1]]))


def forecast(bank: Any, threshold: float, hop_seconds: float, k: int = 1, n: int = 1) -> Forecast:
    """False alerts a day of ``threshold`` on ``bank`` after a k-of-n debounce.

    See the module docstring. Counts the evidence of every scored group
    (``bank.forecast_scores_``), not only the latest
    :data:`edgeasd.scoring.calibrate.MAX_FORWARD_GROUPS` the ``auto`` threshold rests on:
    with those alone (at most 600 windows at the default 60 s groups and 10 s hop) the
    bound could never fall below 86,400 / 10 / 601 = 14 a day, and the minutes the forecast
    asks for could never make it known.
    """
    per_day_windows = 86400.0 / hop_seconds
    minute = hop_seconds / 60.0
    if not math.isfinite(threshold) or len(bank) == 0:
        return Forecast(False, None, None, 0.0, 0.0, "false alerts a day: no threshold yet")
    ref = bank.references_
    forward = bank.forecast_scores_
    margins = bank.forecast_margins_
    mask = np.isfinite(forward)
    windows, starts = 0, 0
    grp = ref.grp[: ref.n]
    for code in np.unique(grp[mask]):
        rows = np.flatnonzero(mask & (grp == code))  # storage order = time order
        starts += debounced_starts(margins[rows] * forward[rows] > threshold, k, n)
        windows += rows.size
    scored = windows * minute
    if windows == 0:
        return Forecast(
            False,
            None,
            None,
            0.0,
            float("nan"),
            "false alerts a day: not known yet: no recording has been scored against earlier "
            "ones of its condition; enroll another recording of a condition already enrolled",
        )
    starts, windows = int(starts), int(windows)
    expected = starts / windows * per_day_windows
    bound = (1 + starts) / (windows + 1) * per_day_windows
    seen = f"{starts} of them would have alerted" if starts else "none of them would have alerted"
    if bound <= USEFUL_PER_DAY:
        return Forecast(
            True,
            expected,
            bound,
            scored,
            0.0,
            f"false alerts a day: at most {bound:.2g}"
            + (f" (about {expected:.2g})" if starts else "")
            + f", while the machine sounds as in the {scored:,.0f} min of normal audio scored "
            f"against earlier recordings ({seen}); a lasting change in its sound alerts "
            "regardless: if it is normal, confirm it with `edgeasd feedback ALERT normal`",
        )
    # windows W for which (1 + E) / (W + 1) * per_day_windows <= USEFUL_PER_DAY
    need_windows = (1 + starts) * per_day_windows / USEFUL_PER_DAY - 1
    more = max(0.0, need_windows - windows) * minute
    # the conditions whose recordings count (those the threshold rests on: a condition still
    # commissioning does not, while a commissioned one has evidence)
    names = sorted({str(d) for d in np.asarray(bank.domains_)[mask]})
    which = " or ".join(repr(d) for d in names)
    return Forecast(
        False,
        None,
        bound,
        scored,
        more,
        f"false alerts a day: not known yet: {scored:.0f} min of normal audio were scored "
        f"against earlier recordings and {seen}; a forecast of at most {USEFUL_PER_DAY:g} a "
        f"day needs about {more:,.0f} more minutes of normal audio of condition {which} "
        "(each recording enrolled after the first of its condition adds its minutes)",
    )
