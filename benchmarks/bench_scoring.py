"""Scoring engine benchmarks: single-query speed, batch crossover, incremental enrollment,
numba cold start, and the calibration measurement behind the default threshold rule.

Run with ``python benchmarks/run.py scoring`` (or ``python benchmarks/bench_scoring.py``).
Every figure is a ratio of two timings taken in the same run, interleaved, best of
several repetitions (the minimum is the least disturbed by other processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np

from edgeasd.evaluation.synthetic import domain_shift_scenario
from edgeasd.scoring import ReferenceBank, calibrate, kernels

DIM = 512


def _best(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best-of-``repeat`` seconds per function, calls interleaved."""
    for f in fns.values():
        f()
    best = dict.fromkeys(fns, np.inf)
    for _ in range(repeat):
        for name, f in fns.items():
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    y = rng.normal(size=(n, DIM)).astype(np.float32)
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def _one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return nullcontext()
    return threadpool_limits(1)


def bench_single_query(rng: np.random.Generator) -> str:
    rows = [
        "| N | edgeasd `bank.score(q)` | fused kernel | numpy `Y @ q` + ops | numpy, 1 BLAS "
        "thread | numpy / edgeasd | numpy 1-thread / edgeasd |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in (1_000, 10_000, 100_000):
        bank = ReferenceBank(DIM, exclude_same_group=False)
        y = _unit_rows(rng, n)
        bank.enroll(y[: min(n, 64)])  # small build; the rest goes in below without O(N^2)
        bank.references_.reserve(n)
        bank.references_.y[:n] = y
        bank.references_.n = n
        bank.references_.rho = rng.uniform(0.05, 0.2, n)
        rho = bank.references_.rho
        q = _unit_rows(rng, 1)[0]

        def numpy_ops(y=y, rho=rho, q=q):
            s = 0.5 * (1.0 - y @ q) / rho
            i = int(np.argmin(s))
            return s[i], i

        fns = {
            "api": lambda b=bank, q=q: b.score(q),
            "kernel": lambda b=bank, q=q: kernels.score_fused(
                q, b.references_.y, b.references_.n, b.references_.rho, 0, 0
            ),
            "numpy": numpy_ops,
        }
        repeat = max(5, 200_000 // n)
        t = _best(fns, repeat)
        with _one_thread():
            t1 = _best({"numpy1": numpy_ops}, repeat)["numpy1"]
        rows.append(
            f"| {n:,} | {1e3 * t['api']:.3f} ms | {1e3 * t['kernel']:.3f} ms | "
            f"{1e3 * t['numpy']:.3f} ms | {1e3 * t1:.3f} ms | "
            f"{t['numpy'] / t['api']:.2f}x | {t1 / t['api']:.2f}x |"
        )
    return "\n".join(rows)


def bench_batch(rng: np.random.Generator) -> str:
    n = 10_000
    bank = ReferenceBank(DIM, exclude_same_group=False)
    bank.enroll(_unit_rows(rng, 64))
    bank.references_.reserve(n)
    bank.references_.y[:n] = _unit_rows(rng, n)
    bank.references_.ysq[:n] = np.einsum(
        "ij,ij->i", bank.references_.y[:n], bank.references_.y[:n], dtype=np.float64
    )
    bank.references_.n, bank.references_.rho = n, rng.uniform(0.05, 0.2, n)
    rows = [
        "| queries per call | fused loop | BLAS batch path | fused / BLAS |",
        "|---:|---:|---:|---:|",
    ]
    from edgeasd.scoring import references as bank_module

    for m in (1, 2, 4, 8, 32, 128):
        Q = _unit_rows(rng, m)

        def run(threshold: int, Q=Q) -> None:
            old = bank_module.BATCH_MIN
            bank_module.BATCH_MIN = threshold
            try:
                bank.score(Q)
            finally:
                bank_module.BATCH_MIN = old

        t = _best({"fused": lambda: run(10**9), "blas": lambda: run(1)}, max(3, 64 // m))
        rows.append(
            f"| {m} | {1e3 * t['fused']:.2f} ms | {1e3 * t['blas']:.2f} ms | "
            f"{t['fused'] / t['blas']:.2f}x |"
        )
    return (
        f"N = {n:,}, dim {DIM}, cosine. `BATCH_MIN` = {bank_module.BATCH_MIN}.\n\n"
    ) + "\n".join(rows)


def bench_enroll(rng: np.random.Generator) -> str:
    n = 10_000
    y = _unit_rows(rng, n + 20)
    bank = ReferenceBank(DIM, exclude_same_group=False)
    t0 = time.perf_counter()
    bank.enroll(y[:n])  # from scratch with edgeasd's own kernels (one call)
    t_own = time.perf_counter() - t0
    inc = []
    for i in range(20):
        t = time.perf_counter()
        bank.enroll(y[n + i])
        inc.append(time.perf_counter() - t)
    t_inc = min(inc)
    yy = y[: n + 1]

    def reference_style() -> None:
        d = 0.5 * (1.0 - yy @ yy.T)  # what the reference code does on every change
        d = np.sort(d, axis=1)
        _ = d[:, 1]

    t = time.perf_counter()
    reference_style()
    t_ref = time.perf_counter() - t
    with _one_thread():
        t = time.perf_counter()
        reference_style()
        t_ref1 = time.perf_counter() - t
    return "\n".join(
        [
            f"N = {n:,}, dim {DIM}, cosine, knn K=1.\n",
            "| enroll one sample | time | from-scratch / incremental |",
            "|---|---:|---:|",
            f"| incremental `bank.enroll(x)` (best of 20) | {1e3 * t_inc:.2f} ms | 1x |",
            f"| from scratch, reference code style (`Y @ Y.T`, full sort), 1 BLAS thread "
            f"| {t_ref1:.1f} s | {t_ref1 / t_inc:,.0f}x |",
            f"| from scratch, reference code style, default BLAS threads | {t_ref:.1f} s | "
            f"{t_ref / t_inc:,.0f}x |",
            f"| from scratch, edgeasd kernels (one `enroll` of all N) | {t_own:.1f} s | "
            f"{t_own / t_inc:,.0f}x |",
        ]
    )


COLD = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import numpy as np
    t1 = time.perf_counter()
    from edgeasd.scoring import ReferenceBank
    t2 = time.perf_counter()
    bank = ReferenceBank(512)
    X = np.random.default_rng(0).normal(size=(40, 512))
    bank.enroll(X[:20], group="a"); bank.enroll(X[20:], group="b")
    bank.score(X[:1]); bank.score(X[:8])
    t3 = time.perf_counter()
    t = time.perf_counter(); bank.score(X[:1]); t4 = time.perf_counter() - t
    print(t1 - t0, t2 - t1, t3 - t2, t4)
""")


def bench_cold_start() -> str:
    out = subprocess.run(
        [sys.executable, "-c", COLD],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    ).stdout.split()
    t_np, t_imp, t_first, t_warm = map(float, out)
    return "\n".join(
        [
            "Fresh process, numba cache already on disk:\n",
            "| step | time |",
            "|---|---:|",
            f"| `import numpy` | {1e3 * t_np:.0f} ms |",
            f"| `import edgeasd.scoring` (numba, scipy not yet) | {1e3 * t_imp:.0f} ms |",
            f"| first enroll + first scores (loads every cached kernel) | {1e3 * t_first:.0f} ms |",
            f"| a warm single-query score, same process | {1e3 * t_warm:.3f} ms |",
            f"| first-call overhead / warm score | {t_first / t_warm:,.0f}x |",
        ]
    )


def _rates(bank: ReferenceBank, sc: dict, subtle: np.ndarray, thr: float) -> np.ndarray:
    """Threshold, false-alarm and detection rates per domain (src, tgt)."""
    s, a = bank.score(sc["test"]), bank.score(sc["anomalies"])
    b = bank.score(subtle)
    td, ad = np.array(sc["test_domains"]), np.array(sc["anomaly_domains"])
    return np.array(
        [thr]
        + [np.mean(x[d == dom] > thr) for x, d in ((s, td), (a, ad), (b, ad))
           for dom in ("source", "target")]
    )  # fmt: skip


def bench_calibration(seeds: int = 3) -> str:
    """False-alarm and detection rates per domain at the calibrated threshold."""
    configs = [
        ("per-window leave-one-out", False, True, False),
        ("leave-one-group-out", False, False, False),
        ("leave-one-group-out + exclude_same_group", True, False, False),
        ("small bank: the 10 target windows only (+ exclude_same_group)", True, False, True),
    ]
    rules = [
        ("quantile", {"q": 0.95}),
        ("gamma", {"q": 0.95}),
        ("fixed", {"value": 3.0}),
        ("auto", {"q": 0.95, "value": 3.0}),
    ]
    acc: dict[tuple[str, str], list[np.ndarray]] = {}
    cal_time = []
    for seed in range(seeds):
        sc = domain_shift_scenario(seed)
        subtle = domain_shift_scenario(seed, anomaly_shift=0.2)["anomalies"]
        for label, excl, per_window, target_only in configs:
            keep = np.array(sc["train_domains"]) == "target" if target_only else slice(None)
            train, groups = sc["train"][keep], np.array(sc["train_groups"])[keep].tolist()
            if per_window:
                groups = [f"w{i}" for i in range(len(groups))]
            bank = ReferenceBank(train.shape[1], exclude_same_group=excl)
            bank.enroll(train, group=groups)
            t = time.perf_counter()
            calibrate.loo_scores(bank.references_)
            if not target_only:
                cal_time.append(time.perf_counter() - t)
            for rule, kw in rules:
                rates = _rates(bank, sc, subtle, bank.calibrate(rule, **kw))
                if target_only:
                    rates[[1, 3, 5]] = np.nan  # no source references: not applicable
                acc.setdefault((label, rule), []).append(rates)
    rows = [
        "| leave-out / density | rule | threshold | false alarms src / tgt | detected "
        "(shift 0.6) src / tgt | detected (shift 0.2) src / tgt |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def pct(v: float) -> str:
        return "n/a" if np.isnan(v) else f"{100 * v:.0f} %"

    for (label, rule), vals in acc.items():
        m = np.mean(vals, axis=0)
        rows.append(
            f"| {label} | {rule} | {m[0]:.2f} | {pct(m[1])} / {pct(m[2])} "
            f"| {pct(m[3])} / {pct(m[4])} | {pct(m[5])} / {pct(m[6])} |"
        )
    return "\n".join(
        [
            "`domain_shift_scenario` (edgeasd/evaluation/synthetic.py), dim 64, "
            f"mean of {seeds} seeds: "
            "990 source windows in 10 recordings, 10 target windows in 3 recordings (consecutive "
            "windows AR(1)-correlated like overlapping windows), tested on 5 unseen recordings "
            "x 20 windows per domain and 50 anomalous windows per domain (centre shifted by "
            "0.6 or by a subtler 0.2). q = 0.95. "
            f"Leave-one-group-out at N = 1,000 takes {1e3 * np.median(cal_time):.0f} ms.\n",
            *rows,
        ]
    )


def main() -> None:
    """Print every scoring benchmark as Markdown."""
    rng = np.random.default_rng(0)
    print(
        "Timings are the best of several interleaved repetitions. On a shared machine the "
        "multi-threaded BLAS timings swing by up to 10x between runs (worker threads wait "
        "for busy cores); the 1-thread columns are the stable comparison.\n"
    )
    print("### Score one query (dim 512, cosine, knn K=1, ratio)\n")
    print(
        "Goal: edgeasd no slower than numpy at any N. `bank.score(q)` is the default path "
        "(BLAS product + one fused normalize-and-min pass, chosen from the next table); "
        "`fused kernel` is the single-pass numba loop (`kernels.score_fused`, used for "
        "euclidean).\n"
    )
    print(bench_single_query(rng))
    print("\n### Fused single-pass loop vs BLAS path, by queries per call\n")
    print(bench_batch(rng))
    print("\n### Enroll one sample into N = 10,000\n")
    print(
        "Goal: incremental >= 10,000x faster than a from-scratch build. The incremental "
        "cost is one pass over the bank (N x dim float32, 20 MB here: about 1 ms at memory "
        "bandwidth) plus list merges, so the ratio is bounded by the speed of the "
        "from-scratch build it is compared with (the issue measured 24 s for the reference "
        "code; a fast multi-threaded BLAS does it in a few seconds).\n"
    )
    print(bench_enroll(rng))
    print("\n### Numba cold start with a warm cache\n")
    print(bench_cold_start())
    print("\n### Calibration without domain labels (default rule evidence)\n")
    print(bench_calibration())


if __name__ == "__main__":
    main()
