"""Forward-chaining calibration scores: each group scored against the groups enrolled before it.

Leave-one-group-out scores (:mod:`edgeasd.scoring.calibrate`) ask how a recording scores
against *all other* recordings, later ones included. An agent in service asks something
else: how does the *next* recording score against what was enrolled before it? A recording
taken later than every reference (after a warm-up, an hour of speed and load wander, a
changed background, a re-seated microphone) has no later twin in the bank, so LOGO scores
understate what later normal audio scores (issue 9: 2.3-2.9 on later real recordings
against a LOGO 0.95-quantile of 0.71).

The forward score of a reference ``y`` of group ``g`` is its score against the bank built,
with the same settings, from the groups enrolled before ``g`` (groups are ordered by their
first reference id, i.e. by enrollment). It is the exact situation of a later recording,
with a smaller bank (so, if anything, conservative). The first two groups of each domain tag
are not scored: the first because a new condition is novel by construction (the operator said
so by tagging it, ``edgeasd enroll --domain``), the second because its only same-condition
references still take their density from the other conditions (``exclude_same_group``: not
from their own group), which makes its scores tiny: measured, 0.02 for a second target group
against 1.6-3.9 for later target recordings (bench_operating_point, pump seed 0).

Cost: replaying the enrollments, O(N² · dim) like LOGO, in the bank's own kernels, plus one
scoring call per scored group (~10-20 ms each at N = 2,000 on a loaded 2-core machine); only
the latest :data:`MAX_SCORED_GROUPS` eligible groups are scored (the ones closest to what a
later recording meets), which bounds that part: N = 4,000 in groups of 6 took 11 s before the
cap.
"""

from __future__ import annotations

import numpy as np

from edgeasd.scoring.references import ReferenceSet
from edgeasd.scoring.validate import check_embeddings

#: A group is scored once its domain tag has this many earlier groups (module docstring).
MIN_EARLIER_GROUPS = 2
#: At most this many groups (the latest eligible ones) are scored.
MAX_SCORED_GROUPS = 100


def group_order(data: ReferenceSet) -> list[np.ndarray]:
    """Row indices of each group, groups in enrollment order (by their first id).

    Returns
    -------
    list of (n_g,) int64 arrays
    """
    groups = data.grp[: data.n]
    if groups.size == 0:
        return []
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rows_by_code = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse))
    parts = np.split(rows_by_code, bounds[:-1])
    return [parts[c] for c in np.argsort(first, kind="stable")]


def forward_scores(data: ReferenceSet) -> np.ndarray:
    """Forward-chaining score of every reference, shape ``(N,)`` float64.

    NaN for the references of the first two groups of each domain tag (see the module
    docstring), and of eligible groups before the latest :data:`MAX_SCORED_GROUPS`.
    The replay is a fresh :class:`ReferenceSet` of the same geometry, fed the stored
    rows (validated again exactly as ``ReferenceBank.enroll`` and ``score`` do).
    """
    n, geometry = data.n, data.geometry
    out = np.full(n, np.nan)
    emb, dom, grp = data.y[:n], data.dom[:n], data.grp[:n]
    replay = ReferenceSet(geometry)
    order = group_order(data)
    counts: dict[int, int] = {}
    eligible = []
    for rows in order:
        d = int(dom[rows[0]])
        eligible.append(counts.get(d, 0) >= MIN_EARLIER_GROUPS)
        counts[d] = counts.get(d, 0) + 1
    scored = np.flatnonzero(eligible)[-MAX_SCORED_GROUPS:]
    to_score = np.zeros(len(order), dtype=bool)
    to_score[scored] = True
    last = int(scored[-1]) if scored.size else -1
    for rows, score in zip(order[: last + 1], to_score, strict=False):
        X = check_embeddings(emb[rows], geometry.dim, geometry.metric, "X")
        if score:
            out[rows] = replay.score(X)[0]
        # the group's own code for all its rows, as enroll(group=name) gives
        replay.append(X, np.full(rows.size, grp[rows[0]]), dom[rows], 0.0)
        replay.refresh()
    return out
