"""Fault suite, the bounded bank and its persisted calibration (issues 20 and 21): SIGKILL
during enrollments that reduce the bank to ``scoring.max_references`` and during enrollments
that update the incrementally kept calibration.

A forked enroller (a real process; it inherits the compiled kernels) commits one group at a
time the way direct enrollment does (:func:`edgeasd.agent.enrollment.enroll.commit` under the
bank's lock) and acknowledges each on a pipe; the parent kills it at a random moment, runs
the recovery every locked access runs, and checks: the bank loads (nothing half-written),
its persisted threshold and forward scores equal a from-scratch calibration of the loaded
bank (the replay of :mod:`edgeasd.scoring.forward`), it holds at most its cap, no id is held
twice or issued again, no acknowledged condition is gone and no acknowledged group is gone
but by a recorded reduction, and no temporary is left.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgeasd.agent.enrollment.batch import Batch
from edgeasd.agent.enrollment.enroll import commit
from edgeasd.scoring import ReferenceBank, generations, load_bank, save_bank, store
from edgeasd.scoring.calibrate import Calibration

from .test_restore_faults import _orphans, fork_and_kill

DIM = 16
#: References per enrolled group: near-duplicates of one of a few machine "sounds"
ROWS = 6


def _batch(rng: np.random.Generator, centers: np.ndarray, name: str) -> Batch:
    c = int(rng.integers(len(centers)))
    rows = centers[c] + 0.05 * rng.normal(size=(ROWS, DIM))
    return Batch(
        embeddings=rows.astype(np.float32),
        domain=f"cond{c}",
        group=name,
        segments=[],
        sample_rate=16000,
        origin="fault campaign",
    )


def _enroller(path: Path, cap: int | None, seed: int, ack_fd: int | None, n: int = 10**5) -> None:
    """Commit ``n`` groups one after another; ack ``GROUP DOMAIN ID,ID,...`` after each."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(size=(3, DIM))
    for k in range(n):
        batch = _batch(rng, centers, f"s{seed}-{k}")
        with store.locked(path):
            bank = load_bank(path, spare=True)
            ids = commit(bank, path, [batch], None, cap)
        if ack_fd is not None:
            line = f"{batch.group} {batch.domain} {','.join(map(str, ids))}\n"
            os.write(ack_fd, line.encode())


def _from_scratch(bank: ReferenceBank) -> Calibration:
    """The calibration of ``bank``'s references replayed from scratch."""
    cal = bank.calibration_
    fresh = Calibration(rule=cal.rule, q=cal.q, value=cal.value)
    fresh.update(bank.references_)
    return fresh


def threshold_mismatch(bank: ReferenceBank) -> int:
    """1 when ``bank``'s threshold or forward scores differ from the from-scratch ones."""
    fresh = _from_scratch(bank)
    t = bank.threshold_
    same = t == fresh.threshold or (np.isnan(t) and np.isnan(fresh.threshold))
    return int(not same or not np.array_equal(bank.forward_scores_, fresh.forward, equal_nan=True))


def bound_campaign(tmp_path: Path, trials: int, seed: int, cap: int | None) -> dict[str, int]:
    """Kills during enrollments under ``cap`` (None: no cap; the calibration only)."""
    warm = tmp_path / "warm"  # compiles every kernel here, before the children fork
    save_bank(ReferenceBank(DIM), warm)
    _enroller(warm, 60, seed, None, n=12)  # 72 references: one reduction
    path = tmp_path / "bank"
    save_bank(ReferenceBank(DIM), path)
    rng = np.random.default_rng(seed)
    acked: dict[str, str] = {}
    issued: list[int] = [-1]
    figures: Counter[str] = Counter(trials=trials)
    for trial in range(trials):
        child_seed = seed * 1000 + 1 + trial
        acks = fork_and_kill(
            lambda fd, s=child_seed: _enroller(path, cap, s, fd), float(rng.uniform(0.05, 0.5))
        )
        for line in acks:
            group, domain, ids = line.split(" ")
            acked[group] = domain
            issued += [int(i) for i in ids.split(",")]
        figures["enrollments acknowledged"] += len(acks)
        with store.locked(path):  # what the next save or restore does first
            generations.recover(path)
        figures["orphans"] += len(_orphans(path))
        bank = load_bank(path)  # never half-written
        ids = bank.ids_.tolist()
        figures["ids held twice"] += len(ids) - len(set(ids))
        figures["next id not above an issued id"] += int(bank.references_.next_id <= max(issued))
        if cap is not None:
            figures["cap excess references"] = max(figures["cap excess references"], len(ids) - cap)
        cal = bank.calibration_  # persisted current: read as stored, not recomputed on load
        figures["loaded with a current calibration"] += int(not (cal.stale or cal.forward_stale))
        fresh = _from_scratch(bank)
        same = bank.threshold_ == fresh.threshold or (
            np.isnan(bank.threshold_) and np.isnan(fresh.threshold)
        )
        figures["threshold not the from-scratch one"] += int(not same)
        forward, want = bank.forward_scores_, fresh.forward
        figures["forward scores not the from-scratch ones"] += int(
            not np.array_equal(forward, want, equal_nan=True)
        )
        domains = set(bank.domains_.tolist())
        figures["acknowledged conditions gone"] += len(set(acked.values()) - domains)
        gone = set(acked) - set(bank.groups_.tolist())
        reductions = bank.meta.get("reductions") or {}
        lost = int(reductions.get("groups_lost", 0))
        figures["acknowledged groups gone unrecorded"] = max(
            figures["acknowledged groups gone unrecorded"], len(gone) - lost
        )
        figures["reductions"] = int(reductions.get("count", 0))
    figures["references at the end"] = len(load_bank(path))
    return dict(figures)


def _check(figures: dict[str, int], capped: bool) -> None:
    for bad in (
        "orphans",
        "ids held twice",
        "next id not above an issued id",
        "threshold not the from-scratch one",
        "forward scores not the from-scratch ones",
        "acknowledged conditions gone",
        "acknowledged groups gone unrecorded",
    ):
        assert figures.get(bad, 0) == 0, (bad, figures)
    assert figures["enrollments acknowledged"] > 0
    if capped:
        assert figures["cap excess references"] <= 0 and figures["reductions"] >= 1, figures


def test_reduction_kill_campaign(tmp_path):
    figures = bound_campaign(tmp_path, trials=12, seed=1, cap=60)
    print("reduction campaign:", figures)
    _check(figures, capped=True)


def test_calibration_kill_campaign(tmp_path):
    figures = bound_campaign(tmp_path, trials=10, seed=2, cap=None)
    print("calibration campaign:", figures)
    _check(figures, capped=False)


@pytest.mark.slow
def test_reduction_kill_campaign_long(tmp_path):
    figures = bound_campaign(tmp_path, trials=100, seed=3, cap=60)
    print("reduction campaign:", figures)
    _check(figures, capped=True)


@pytest.mark.slow
def test_calibration_kill_campaign_long(tmp_path):
    figures = bound_campaign(tmp_path, trials=60, seed=4, cap=None)
    print("calibration campaign:", figures)
    _check(figures, capped=False)
