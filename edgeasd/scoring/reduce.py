"""A bounded bank: reduce it to ``scoring.max_references``, keeping what matters.

Years of feedback enrollments grow a bank without bound; every cost of the agent grows with
it. When a bank holds more than its cap, :func:`reduce_bank` removes references until it
holds :data:`HYSTERESIS` times the cap (so a reduction, which costs one pass of nearest
neighbours over the bank, happens once per ~10 % of the cap enrolled, not at every
enrollment):

1. **Near-duplicates first.** Each reference's nearest other reference (any group) is found
   with float32 BLAS products; the references closest to another are removed first, the
   older of a pair (smaller id) before the newer, and only while that partner stays: the
   survivor stands for both. Overlapping windows of one recording, and recordings of an
   unchanged machine, are what goes.
2. **Every condition and recording kept represented.** A reference is never removed if it is
   the last of its group (one enrollment group: a recording or a stretch of one), nor the
   last of its domain tag (condition). Only when the cap is below the number of groups does
   the group rule give way (the most redundant groups' last references go); the domain
   rule never does.
3. **Consistent afterwards.** The references go through :meth:`ReferenceBank.remove`: the
   neighbour lists of the references that had them as neighbours are repaired exactly, the
   densities refreshed, and the calibration marked stale (recomputed on next use) — the
   bank equals one built from scratch from the survivors (tests/scoring/test_reduce.py).

**The calibration after a reduction** is the from-scratch one of the survivors: their forward
and session-forward scores are replayed (:func:`edgeasd.scoring.forward.replay`) as if only
they had been enrolled, in their order and at their times, and the threshold follows from
them; it equals the threshold of a bank enrolled from the survivors (test). The scores kept
from enrollment are not reused: each was measured against a bank that held references the
reduction removed, i.e. denser than the one later windows meet, so they would understate
what later windows score. The replay reads each group's earlier rows once (the same
per-group update as an enrollment, O(N² · dim) in all): 2.9-8.8 s at N = 9,000, dim 512,
on this 2-core machine depending on its load (BENCHMARKS.md, section costs; it took 58 s
before the forward scores came from the density update's own products), paid once per
``(1 - HYSTERESIS) x cap`` references enrolled.

What a reduction cost in detection is measured in BENCHMARKS.md (section costs).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from edgeasd.errors import InputError

#: A reduction brings the bank to this fraction of its cap.
HYSTERESIS = 0.9
#: Nearest references kept per reference for the greedy removal (then recomputed).
NEAREST = 8
#: Rows and candidates per float32 product block of the nearest-row search (4 MiB).
_BLOCK = 256
_COLS = 4096


@dataclass(frozen=True)
class Reduction:
    """What :func:`reduce_bank` did.

    Attributes
    ----------
    before, after : int
        References before and after.
    removed_ids : (r,) int64
        Ids of the removed references.
    groups_lost : int
        Groups left without any reference (only when the cap is below the group count).
    """

    before: int
    after: int
    removed_ids: np.ndarray
    groups_lost: int


def _nearest(y: np.ndarray, ysq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of each row by squared distance (float32 products).

    Blocks of :data:`_BLOCK` x :data:`_COLS` products, each merged into per-row sorted lists
    by :func:`edgeasd.scoring.kernels.select.nearest_merge` (no N x N matrix, no sort of a
    row: at N = 10,000, dim 512, 1 thread, 2.4x faster than float64 blocks and
    ``np.argpartition``).

    Returns
    -------
    rows : (n, k) int64
        Sorted by distance (-1 padded when n - 1 < k).
    dist : (n, k) float64
        Their squared distances (inf padded).
    """
    from edgeasd.scoring import kernels

    n = y.shape[0]
    rows = np.full((n, k), -1, np.int64)
    key = np.full((n, k), np.inf)
    for a in range(0, n, _BLOCK):
        b = min(n, a + _BLOCK)
        for c0 in range(0, n, _COLS):
            c1 = min(n, c0 + _COLS)
            kernels.nearest_merge(y[a:b] @ y[c0:c1].T, ysq, a, c0, rows, key)
    dist = np.where(rows >= 0, np.maximum(key + ysq[:, None], 0.0), np.inf)
    return rows, dist


def choose_removals(
    y: np.ndarray, ysq: np.ndarray, grp: np.ndarray, dom: np.ndarray, target: int
) -> np.ndarray:
    """Rows to remove so that ``target`` remain (see the module docstring for the order).

    Parameters
    ----------
    y : (n, dim) float32
    ysq : (n,) float64
    grp, dom : (n,) int64
        Group and domain codes.
    target : int
        References to keep (at least the number of domains present).

    Returns
    -------
    (r,) int64
        Row positions, ``r = n - target`` unless the domain rule stops earlier.
    """
    n = y.shape[0]
    alive = np.ones(n, bool)
    left_g = np.bincount(grp, minlength=int(grp.max()) + 1)
    left_d = np.bincount(dom, minlength=int(dom.max()) + 1)
    removed: list[int] = []
    need = n - target
    for keep_groups in (True, False):
        while len(removed) < need:
            live = np.flatnonzero(alive)
            nb, d = _nearest(y[live], ysq[live], NEAREST)
            nb = np.where(nb >= 0, live[np.maximum(nb, 0)], -1)
            cursor = np.zeros(live.size, np.int64)
            index = {int(p): i for i, p in enumerate(live)}
            heap = [(float(d[i, 0]), int(live[i])) for i in range(live.size) if nb[i, 0] >= 0]
            heapq.heapify(heap)
            progress = False
            while heap and len(removed) < need:
                dist, p = heapq.heappop(heap)
                i = index[p]
                if not alive[p] or dist != d[i, cursor[i]]:
                    continue  # stale entry
                partner = nb[i, cursor[i]]
                if not alive[partner]:  # its nearest went: move on to the next one kept
                    c = cursor[i]
                    while c < NEAREST and nb[i, c] >= 0 and not alive[nb[i, c]]:
                        c += 1
                    if c < NEAREST and nb[i, c] >= 0:
                        cursor[i] = c
                        heapq.heappush(heap, (float(d[i, c]), p))
                    continue
                if left_d[dom[p]] <= 1 or (keep_groups and left_g[grp[p]] <= 1):
                    continue
                alive[p] = False
                left_g[grp[p]] -= 1
                left_d[dom[p]] -= 1
                removed.append(p)
                progress = True
            if not progress:
                break
    return np.asarray(sorted(removed), dtype=np.int64)


def reduce_bank(bank, cap: int) -> Reduction | None:
    """Reduce ``bank`` in place to ``HYSTERESIS * cap`` references if it holds more than ``cap``.

    Parameters
    ----------
    bank : ReferenceBank
    cap : int
        ``scoring.max_references``.

    Returns
    -------
    Reduction or None
        None when the bank was within its cap.

    Raises
    ------
    InputError
        ``cap`` is not a positive integer.
    """
    if int(cap) != cap or cap < 1:
        raise InputError(f"max_references must be a positive integer, got {cap!r}")
    n = len(bank)
    if n <= cap:
        return None
    ref = bank.references_
    grp, dom = ref.grp[:n], ref.dom[:n]
    target = max(int(cap * HYSTERESIS), np.unique(dom).size)
    rows = choose_removals(ref.y[:n], ref.ysq[:n], grp, dom, target)
    ids = ref.ids[rows].copy()
    groups_before = np.unique(grp).size
    bank.remove(ids)
    groups_after = np.unique(ref.grp[: len(bank)]).size
    return Reduction(n, len(bank), ids, groups_before - groups_after)
