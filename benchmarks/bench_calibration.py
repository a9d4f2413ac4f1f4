"""Incremental calibration (issue 21): the threshold after enrolling one group, and on load.

A bank of N references (dim 512, clustered unit vectors, groups of 6, default scoring and
threshold rule of the agent: density cap 1.5, ``auto``) is built by enrolling one group at a
time. Then, at N: the time of enrolling one more group *and* reading the new threshold (the
incremental path: one scoring pass of the new group, no replay), against a from-scratch
calibration of the same bank (the forward-chaining replay, what every threshold cost before
issue 21), and the time of loading the saved bank and reading its threshold (persisted: no
recomputation). Both thresholds are checked equal.

Run: ``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/run.py calibration``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import Calibration
from edgeasd.scoring.density_rules import DEFAULT_DENSITY_CAP
from edgeasd.scoring.store import load_bank, save_bank

DIM = 512
GROUP = 6


def _bank(n: int, rng: np.random.Generator) -> ReferenceBank:
    centres = rng.normal(size=(20, DIM))
    bank = ReferenceBank(DIM, density_cap=DEFAULT_DENSITY_CAP)
    for g in range(n // GROUP):
        c = centres[g % 20] + rng.normal(0, 0.3, DIM)
        bank.enroll(c + rng.normal(0, 0.1, (GROUP, DIM)), domain=f"d{g % 3}", group=f"g{g}")
    return bank


def main() -> None:
    logging.disable(logging.WARNING)  # random extra groups: "cannot alert" warnings
    rng = np.random.default_rng(0)
    print("Threshold after enrolling one group of 6 (dim 512), one thread; median of 5 for the")
    print("incremental path. Command: `OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python")
    print("benchmarks/run.py calibration`.\n")
    print(
        "| N | enroll one group + new threshold | from-scratch calibration | ratio "
        "| load + threshold | equal |"
    )
    print("|---:|---:|---:|---:|---:|---|")
    for n in (1_000, 10_000):
        bank = _bank(n, rng)
        bank.threshold_  # noqa: B018 - calibrated once
        times = []
        for i in range(5):
            X = rng.normal(size=(GROUP, DIM))
            t0 = time.perf_counter()
            bank.enroll(X, domain="d0", group=f"extra{i}")
            t = bank.threshold_
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fresh = Calibration()
        fresh.update(bank.references_)
        scratch = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            save_bank(bank, Path(tmp) / "bank")
            t0 = time.perf_counter()
            loaded = load_bank(Path(tmp) / "bank")
            t_loaded = loaded.threshold_
            load = time.perf_counter() - t0
        inc = float(np.median(times))
        equal = t == fresh.threshold == t_loaded
        print(
            f"| {len(bank):,} | {1e3 * inc:.1f} ms | {scratch:.2f} s | {scratch / inc:.0f}x "
            f"| {1e3 * load:.0f} ms | {'yes' if equal else 'NO'} |"
        )


if __name__ == "__main__":
    main()
