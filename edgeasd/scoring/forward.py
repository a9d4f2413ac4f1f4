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
with a smaller bank (so, if anything, conservative). A group is scored (:func:`scorable`)
when its domain tag already has an earlier group and the bank before it holds at least two
groups: the first group of a condition is novel by construction (the operator said so by
tagging it, ``edgeasd enroll --domain``), and a bank of one group has no densities
(``exclude_same_group``). Under the paper's uncapped densities the second group of a
condition scored tiny as well (0.02 against 1.6-3.9 for later recordings, pump seed 0),
because its only same-condition references took their density from the other conditions;
the ``cap`` and ``condition`` density rules (:mod:`edgeasd.scoring.density_rules`) remove
that, so under them the second group is scored. Under the paper's rule it is not.

Session-forward scores: enrollments more than :data:`SESSION_GAP_SECONDS` apart (their ``at``
times) start a new *session* (a machine start, a re-seated microphone, another shift). The
session-forward score of a group is its score against the bank as it stood when its session
began (:class:`SessionState`: the references and their densities then), given when that bank
holds at least two groups and one of the group's condition (:func:`session_scorable`). It is
what a later session meets: on the operating-point protocol the highest later-session normal
score was 0.58-1.96x the largest session-forward score, against 0.43-3.9x the largest
forward score (14 machine/seed sets; BENCHMARKS.md, operating_point).

Incremental (issue 21): both depend only on what came before, so
:meth:`edgeasd.scoring.bank.ReferenceBank.enroll` scores each new group both ways just before
appending it (:func:`score_group`: one matrix product, O(N · dim)) and keeps the result;
:func:`replay` (from scratch, O(N² · dim)) gives the same numbers and runs only after a
removal, after an enrollment that extends an existing group, or for a bank saved before
these scores were kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeasd.scoring.references import ReferenceSet

#: Version of the eligibility rule; banks saved under another recompute their scores once.
RULE_VERSION = 3
#: Enrollments more than this far apart (their ``at`` times) start a new session: a machine
#: start, a re-seated microphone, another shift. Sessions a few hours apart differ more than
#: recordings of one session (the drift simulator's warm-up, wander and re-seating).
SESSION_GAP_SECONDS = 3600.0


@dataclass
class SessionState:
    """Where the current session began, for session-forward scores.

    Attributes
    ----------
    start : int
        References enrolled before the current session (rows ``0 .. start-1``).
    rho : (start,) float64
        Their scoring densities when the session began.
    last : float
        Enrollment time of the latest group (UNIX seconds; -inf: none yet).
    """

    start: int = 0
    rho: np.ndarray = field(default_factory=lambda: np.empty(0))
    last: float = -np.inf

    def advance(self, data: ReferenceSet, at: float) -> None:
        """Account for a group enrolled at ``at`` (``data``: the bank just before it)."""
        if at - self.last > SESSION_GAP_SECONDS and self.last > -np.inf:
            self.start, self.rho = data.n, data.rho[: data.n].copy()
        self.last = max(self.last, at)


def session_scorable(data: ReferenceSet, state: SessionState, dom: int) -> bool:
    """Whether a group of domain ``dom`` gets a session-forward score (module docstring)."""
    n = state.start
    if n == 0:
        return False
    grp = data.grp[:n]
    return np.unique(grp).size >= 2 and bool(np.any(data.dom[:n] == dom))


def earlier_groups_needed(data: ReferenceSet) -> int:
    """Earlier groups of the same domain a group needs to be scored (module docstring)."""
    return 2 if data.geometry.density_rule == "paper" else 1


def scorable(data: ReferenceSet, dom: int) -> bool:
    """Whether a group of domain code ``dom`` enrolled next gets a forward score.

    ``data`` is the bank just before that group (O(N) on its group and domain codes).
    """
    n = data.n
    if n == 0:
        return False
    grp = data.grp[:n]
    if np.unique(grp).size < 2:
        return False
    mine = np.unique(grp[data.dom[:n] == dom]).size
    return mine >= earlier_groups_needed(data)


def score_group(
    data: ReferenceSet, state: SessionState, X: np.ndarray, dom: int
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and session-forward scores of a group about to be appended (NaN: not scored).

    ``state`` must already have :meth:`SessionState.advance`-d for this group. One matrix
    product under cosine when both are scored (:meth:`ReferenceSet.score_twice`).
    """
    both = scorable(data, dom), session_scorable(data, state, dom)
    if all(both):
        return data.score_twice(X, state.start, state.rho)
    nan = np.full(X.shape[0], np.nan)
    if both[0]:
        return data.score(X)[0], nan
    if both[1]:
        return nan, data.score(X, state.start, state.rho)[0]
    return nan, nan.copy()


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


def replay(data: ReferenceSet) -> tuple[np.ndarray, np.ndarray, SessionState]:
    """Forward-chaining and session-forward scores of every reference, from scratch.

    The replay is a fresh :class:`ReferenceSet` of the same geometry, fed the stored rows group
    by group in enrollment order (as validated when they were enrolled, so that the replay
    computes exactly what the incremental path computed), each group at its stored
    enrollment time.

    Returns
    -------
    forward, session : (N,) float64
        NaN where a group is not :func:`scorable` / :func:`session_scorable`.
    state : SessionState
        After the last group (what the incremental path continues from).
    """
    n, geometry = data.n, data.geometry
    forward, session = np.full(n, np.nan), np.full(n, np.nan)
    emb, dom, grp, added = data.y[:n], data.dom[:n], data.grp[:n], data.added[:n]
    fresh = ReferenceSet(geometry)
    state = SessionState()
    for rows in group_order(data):
        X = np.ascontiguousarray(emb[rows])
        d, at = int(dom[rows[0]]), float(added[rows[0]])
        state.advance(fresh, at)
        forward[rows], session[rows] = score_group(fresh, state, X, d)
        # the group's own code for all its rows, as enroll(group=name) gives
        fresh.append(X, np.full(rows.size, grp[rows[0]]), dom[rows], at)
        fresh.refresh()
    return forward, session, state


def forward_scores(data: ReferenceSet) -> np.ndarray:
    """Forward-chaining score of every reference, from scratch, shape ``(N,)`` (:func:`replay`)."""
    return replay(data)[0]


def latest_groups(data: ReferenceSet, forward: np.ndarray, count: int) -> np.ndarray:
    """Mask over rows: the scored rows of the latest ``count`` scored groups, shape ``(N,)``.

    The threshold follows the bank: scores of groups enrolled long ago (a bank of a year
    of feedback enrollments) age out of it.
    """
    n = data.n
    mask = np.zeros(n, dtype=bool)
    scored = np.isfinite(forward[:n])
    if not scored.any():
        return mask
    codes = data.grp[:n][scored]
    rows = np.flatnonzero(scored)
    _, first = np.unique(codes, return_index=True)  # first scored row of each group
    keep = np.sort(rows[first])[-count:]
    mask[np.isin(data.grp[:n], data.grp[keep])] = True
    return mask & scored
