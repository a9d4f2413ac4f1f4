"""What the ``condition`` density rule adds to each refresh of a bank (BENCHMARKS.md, costs).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/density_rule_cost.py

Times :func:`edgeasd.scoring.density_rules.fit` plus the map it returns (best of 5) on random
unit vectors, dim 512, groups of 6: once with a young condition of 2 groups beside an
established one, once with a single condition (where the rule is the paper's and does nothing).
"""

from __future__ import annotations

import time

import numpy as np

from edgeasd.scoring import density_rules


def best_ms(raw, y, ysq, grp, dom, repeats: int = 5) -> float:
    """Best of ``repeats`` wall times of one fit and its map, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        density_rules.fit("condition", None, raw, y, ysq, grp, dom, "cosine")(raw)
        times.append(time.perf_counter() - start)
    return 1000.0 * min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    print("| N | young condition (2 groups) | one condition |")
    print("|---:|---:|---:|")
    for n in (10_000, 100_000):
        y = rng.standard_normal((n, 512)).astype(np.float32)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        ysq = np.einsum("ij,ij->i", y, y).astype(np.float64)
        grp = np.arange(n, dtype=np.int64) // 6
        raw = rng.uniform(0.2, 0.5, n)
        young = np.zeros(n, np.int64)
        young[-12:] = 1
        single = np.zeros(n, np.int64)
        print(
            f"| {n:,} | {best_ms(raw, y, ysq, grp, young):.2f} ms "
            f"| {best_ms(raw, y, ysq, grp, single):.2f} ms |"
        )


if __name__ == "__main__":
    main()
