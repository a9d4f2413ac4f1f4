"""The enrollment guard: windows declared normal that the bank already finds anomalous.

Before an enrollment is committed, its windows are scored against the bank as it is. Into
an *existing* condition (a domain tag the bank holds), a window scoring above the
threshold in force is most likely not normal operation (``enroll --next`` started while the
machine played a fault): the enrollment names those windows and is refused unless the
operator confirms them (``--accept-anomalous``; ``edgeasd feedback`` confirms by itself).
A *new* condition is exempt (it is expected to differ), but the result says how far it
lies from the bank: its median window score as a multiple of the threshold.

Without a finite threshold (learning, an uncalibrated bank) nothing can be judged: the
guard passes and says so. The threshold is the bank's one threshold in force
(:func:`edgeasd.agent.alerts.decision.bank_state`); a per-condition threshold replaces it
here once the threshold policy provides one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeasd.agent.enrollment.batch import Batch
from edgeasd.errors import InputError
from edgeasd.scoring import ReferenceBank

#: Windows named one by one in a refusal; the rest are counted.
NAMED = 8


class AnomalousEnrollment(InputError):
    """Windows enrolled into an existing condition score above its threshold."""


def _where(batch: Batch, i: int) -> str:
    """How a message names window ``i`` of ``batch``."""
    if i >= len(batch.window_starts):
        return f"{batch.origin}, window {i + 1} of group {batch.group}"
    t = batch.window_starts[i]
    if t > 1e8:  # a UNIX time: a live window
        stamp = time.strftime("%H:%M:%S", time.localtime(t))
        return f"{batch.origin} window at {stamp}"
    minutes, seconds = divmod(t, 60.0)
    return f"{batch.origin} at {int(minutes)}:{seconds:04.1f}"


def check(
    bank: ReferenceBank,
    threshold: float | None,
    batches: Sequence[Batch],
    accept_anomalous: bool = False,
) -> dict[str, Any]:
    """Score the windows of ``batches`` against ``bank`` and refuse anomalous ones.

    Parameters
    ----------
    bank : ReferenceBank
        The bank before the enrollment.
    threshold : float or None
        The threshold in force (None or not finite: no judgement possible).
    batches : sequence of Batch
        The enrollment.
    accept_anomalous : bool
        Enroll windows above the threshold anyway (the operator confirmed them).

    Returns
    -------
    dict
        ``checked`` (bool), ``threshold``, ``anomalous`` (list of ``{"window", "score"}``
        above the threshold in existing conditions, accepted), ``new_conditions``
        (``{domain: {"median_score", "times_threshold"}}``) and ``words`` (plain lines).

    Raises
    ------
    AnomalousEnrollment
        Windows of existing conditions above the threshold, without ``accept_anomalous``.
    """
    report: dict[str, Any] = {
        "checked": False,
        "threshold": None,
        "anomalous": [],
        "new_conditions": {},
        "words": [],
    }
    if not batches or len(bank) == 0:
        return report
    if threshold is None or not math.isfinite(threshold):
        report["words"].append(
            "not checked against the bank: it has no threshold yet (every window is enrolled)"
        )
        return report
    report.update(checked=True, threshold=float(threshold))
    known = set(np.asarray(bank.domains_).astype(str).tolist())
    flagged: list[dict[str, Any]] = []
    for domain in sorted({b.domain for b in batches}):
        mine = [b for b in batches if b.domain == domain]
        scores = np.asarray(bank.score(np.concatenate([b.embeddings for b in mine])))
        if domain not in known:
            median = float(np.median(scores))
            ratio = median / threshold if threshold > 0 else math.inf
            report["new_conditions"][domain] = {
                "median_score": round(median, 4),
                "times_threshold": round(ratio, 3),
            }
            report["words"].append(
                f"new condition {domain!r}: its windows score {ratio:.2g} x the threshold "
                f"(median {median:.4g}, threshold {threshold:.4g}); "
                + (
                    "it lies far from the enrolled conditions"
                    if ratio > 1
                    else "it lies within reach of the enrolled conditions"
                )
            )
            continue
        pos = 0
        for b in mine:
            for i, s in enumerate(scores[pos : pos + len(b.embeddings)]):
                if s > threshold:
                    flagged.append({"window": _where(b, i), "score": round(float(s), 4)})
            pos += len(b.embeddings)
    if flagged and not accept_anomalous:
        shown = "; ".join(f"{f['window']} (score {f['score']:.4g})" for f in flagged[:NAMED])
        more = f"; and {len(flagged) - NAMED} more" if len(flagged) > NAMED else ""
        total = sum(len(b.embeddings) for b in batches)
        raise AnomalousEnrollment(
            f"{len(flagged)} of {total} windows score above the threshold {threshold:.4g} of "
            f"their condition, so they may not be normal operation: {shown}{more}; "
            "nothing was enrolled",
            help="if the machine really ran normally, repeat with --accept-anomalous; "
            "otherwise enroll again while it runs normally",
        )
    report["anomalous"] = flagged
    if flagged:
        report["words"].append(
            f"{len(flagged)} window(s) above the threshold enrolled as normal "
            "(accepted by the operator)"
        )
    return report
