"""Costs as the bank grows (issue 21): edgeasd against numpy/BLAS measured in the same run.

Run with ``python benchmarks/run.py costs`` (or ``python benchmarks/bench_costs.py``).
``EDGEASD_BENCH_100K_BUILD=1`` adds the from-scratch build of 100,000 references at dim 512
and its blocked-numpy reference (about 10 minutes each on a loaded 2-core machine); without
it, the 100k column uses a build of a smaller dim for the bank the other rows need.

Every comparison runs both sides in one process, interleaved, with one BLAS thread (the
daemon's pinned setting, :mod:`edgeasd.threads`), and reports medians. Data: clustered unit
vectors (a centre per 50 rows, noise 0.6), groups of 6 rows (one enrollment group), the
agent's scoring settings (density cap 1.5, rule ``auto``); each saved bank carries its forward
and session-forward calibration (:func:`calibrated`, once per cache), so that an enrollment
into it keeps them incrementally, as in the agent, and its cost shows in the enrollment row.

- **numpy references**: one query ``0.5 * (1 - Y @ q) / rho`` and its argmin; a batch of 64
  the same with ``Q @ Y.T`` (the issue's reference; ``Y @ Q.T``, the orientation edgeasd
  multiplies in, is reported beside it); the density build ``Y[block] @ Y.T`` in blocks of
  1,024 rows, own group masked, ``np.partition`` for the nearest; one enrollment ``Y @ X.T``
  (N x 6).
- **bandwidth bound**: the time of one float32 sum over the bank (numba, vectorized), i.e.
  reading N x dim x 4 bytes once; a one-query score cannot beat it.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from edgeasd.scoring import ReferenceBank, load_bank, save_bank
from edgeasd.scoring.reduce import reduce_bank
from edgeasd.scoring.references import DEFAULT_DENSITY_CAP

DIM = 512
GROUP = 6
SESSION_GROUPS = 100
T0 = 1.7e9
CACHE = Path(tempfile.gettempdir()) / "edgeasd-bench-costs"


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit rows around n / 50 centres, float32, shape (n, dim)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 50), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def interleaved(fns: dict, reps: int) -> dict[str, float]:
    """Median seconds of each function, the functions called in turn ``reps`` times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


@njit(cache=False, fastmath=True)  # not cached: run as a script and as a module
def _read_all(y: np.ndarray) -> float:
    acc = np.float32(0.0)
    for i in range(y.shape[0]):
        for k in range(y.shape[1]):
            acc += y[i, k]
    return acc


def bank_of(y: np.ndarray) -> ReferenceBank:
    """A bank holding ``y`` in groups of :data:`GROUP`, built by one density build.

    The agent's scoring settings (density cap 1.5, ``auto``); groups enrolled a minute apart,
    a new session (two hours later) every :data:`SESSION_GROUPS` groups. Its forward
    calibration is not computed here (:func:`calibrated`).
    """
    groups = np.arange(len(y)) // GROUP
    bank = ReferenceBank(y.shape[1], density_cap=DEFAULT_DENSITY_CAP)
    ref = bank.references_
    codes = ref.group_labels.codes([str(g) for g in groups.tolist()])
    ref.append(y, np.asarray(codes), np.zeros(len(y), np.int64), 0.0)
    ref.added[: len(y)] = T0 + 60.0 * groups + 7200.0 * (groups // SESSION_GROUPS)
    ref.domain_labels.codes(["source"])
    bank._refresh()
    return bank


def calibrated(bank: ReferenceBank) -> float:
    """Give ``bank`` its forward calibration from scratch (the replay); seconds it took."""
    bank.calibration_.forward_stale = True
    t = time.perf_counter()
    bank.calibrate()
    return time.perf_counter() - t


def numpy_build(y: np.ndarray, block: int = 1024) -> np.ndarray:
    """Nearest distance outside the own group per row: blocked GEMM + partition."""
    groups = np.arange(len(y)) // GROUP
    out = np.empty(len(y))
    for a in range(0, len(y), block):
        d = y[a : a + block] @ y.T
        d = 0.5 * (1.0 - d)
        d[groups[a : a + block, None] == groups[None, :]] = np.inf
        out[a : a + block] = np.partition(d, 0, axis=1)[:, 0]
    return out


def bank_bytes(bank: ReferenceBank) -> int:
    """Bytes of every array the bank keeps (capacity and calibration included)."""
    ref, cal = bank.references_, bank.calibration_
    arrays = [ref.y, ref.ysq, ref.ids, ref.grp, ref.dom, ref.added, ref.rho]
    st = ref.neighbours
    arrays += [st.nb_id, st.nb_d, st.nb_n, st.sums, st.counts]
    arrays += [cal.forward, cal.session_forward, cal.session.rho, cal.loo]
    return sum(a.nbytes for a in arrays)


def cache_path(n: int, dim: int) -> Path:
    """Where the saved bank of ``n`` rows is kept (with its forward calibration)."""
    CACHE.mkdir(exist_ok=True)
    return CACHE / f"bank-{n}-{dim}-calibrated.bank"


def cached_bank(n: int, dim: int, built: ReferenceBank | None = None) -> tuple[Path, float, float]:
    """A saved, calibrated bank of ``n`` clustered rows (built once, kept in the temp folder).

    ``built``: a bank just built from ``clustered(n, dim)`` (timed by the caller) to save.

    Returns
    -------
    path : Path
    build, replay : float
        Seconds of its density build and of its from-scratch calibration, when made.
    """
    path = cache_path(n, dim)
    stamp = path.with_suffix(".seconds")
    if not path.exists():
        t = time.perf_counter()
        bank = bank_of(clustered(n, dim)) if built is None else built
        t_build = time.perf_counter() - t if built is None else float("nan")
        t_replay = calibrated(bank)
        stamp.write_text(f"{t_build} {t_replay}")
        save_bank(bank, path)
    t_build, t_replay = (float(v) for v in stamp.read_text().split())
    return path, t_build, t_replay


def scaling_rows(n: int, dim: int, build_numpy: bool) -> list[str]:
    """Rows of the scaling table for one bank size."""
    rows = []
    y = clustered(n, dim)
    # from-scratch build (the density build: every reference's nearest outside its group)
    if build_numpy:
        t_own = t_np = np.inf
        for _ in range(2 if n <= 10_000 else 1):  # alternating, best of each
            gc.collect()
            t = time.perf_counter()
            built = bank_of(y)
            t_own = min(t_own, time.perf_counter() - t)
            t = time.perf_counter()
            want = numpy_build(y)
            t_np = min(t_np, time.perf_counter() - t)
        err = float(np.abs(built.raw_density_ - want).max())
        rows.append(
            f"| {n:,} | {dim} | from-scratch density build | {t_own:.2f} s | {t_np:.2f} s | "
            f"{t_own / t_np:.2f}x | same nearest distances within {err:.0e} |"
        )
        # the bank the other rows use is the one just timed
        path, _, t_replay = cached_bank(n, dim, None if cache_path(n, dim).exists() else built)
        del built
    else:
        path, t_built, t_replay = cached_bank(n, dim)
        t_np = float("nan")
        rows.append(
            f"| {n:,} | {dim} | from-scratch density build | {t_built:.1f} s | not run | | "
            "set EDGEASD_BENCH_100K_BUILD=1 for the numpy side |"
        )
    ratio = f"{t_replay / t_np:.2f}x" if np.isfinite(t_np) else ""
    rows.append(
        f"| {n:,} | {dim} | from-scratch calibration (forward replay of all "
        f"{n // GROUP:,} groups, once per cache) | {t_replay:.2f} s | "
        f"{t_np:.2f} s (the numpy build above) | {ratio} | what a removal or reduction costs |"
    )
    # first enrollment of one group after a load, with the forward calibration, and the
    # threshold after it
    X = clustered(GROUP, dim, seed=7)
    Y = y

    def first_enroll() -> tuple[float, float]:
        bank = load_bank(path, spare=True)  # as the daemon and `edgeasd enroll` load it
        before = bank.threshold_
        at = T0 + 7200.0 * (n // GROUP) + 86400.0  # a later session, as a CLI enroll
        t = time.perf_counter()
        bank.enroll(X, group="new", at=at)
        t_enroll = time.perf_counter() - t
        t = time.perf_counter()
        after = bank.threshold_
        t_threshold = time.perf_counter() - t
        cal = bank.calibration_
        assert np.isfinite(before) and np.isfinite(after)
        assert np.isfinite(cal.forward[-GROUP:]).all(), "the new group was not scored"
        assert np.isfinite(cal.session_forward[-GROUP:]).all(), "no session-forward score"
        return t_enroll, t_threshold

    enroll_times, threshold_times, np_times = [], [], []
    for _ in range(3 if n >= 100_000 else 5):
        t_e, t_t = first_enroll()
        enroll_times.append(t_e)
        threshold_times.append(t_t)
        t = time.perf_counter()
        _ = Y @ X.T
        np_times.append(time.perf_counter() - t)
    t_e, t_p = float(np.median(enroll_times)), float(np.median(np_times))
    t_t = float(np.median(threshold_times))
    rows.append(
        f"| {n:,} | {dim} | enroll one group of {GROUP} (first after a load; forward and "
        f"session-forward scores kept) | {1e3 * t_e:.1f} ms | {1e3 * t_p:.1f} ms (N x 6 "
        f"product) | {t_e / t_p:.2f}x | |"
    )
    rows.append(
        f"| {n:,} | {dim} | new threshold after it (`bank.threshold_`, rule `auto`) | "
        f"{1e3 * t_t:.1f} ms | | | goal at 10k <= 50 ms |"
    )
    if n <= 10_000:
        rows.append(reduction_cost_row(path, n, dim))
    bank = load_bank(path, spare=True)
    raw = n * dim * 4
    loaded = bank_bytes(bank)
    bank.enroll(X, group="new")
    rows.append(
        f"| {n:,} | {dim} | bank memory after load / after the first enrollment | "
        f"{loaded / 2**20:.0f} / {bank_bytes(bank) / 2**20:.0f} MiB | {raw / 2**20:.0f} MiB "
        f"(raw N x dim float32) | {loaded / raw:.2f}x / {bank_bytes(bank) / raw:.2f}x | |"
    )
    # scoring: one window and a batch of 64, against numpy and the bandwidth bound
    yy = bank.references_.y[: len(bank)]
    rr = bank.references_.rho
    for m in (1, 64):
        Q = clustered(m, dim, seed=11 + m)
        q = Q[0]

        def numpy_one(q=q) -> None:
            s = 0.5 * (1.0 - yy @ q) / rr
            np.argmin(s)

        def numpy_batch(Q=Q) -> None:
            s = 0.5 * (1.0 - Q @ yy.T) / rr
            np.argmin(s, axis=1)

        def numpy_batch_t(Q=Q) -> None:  # the other orientation of the same product
            s = 0.5 * (1.0 - yy @ Q.T) / rr[:, None]
            np.argmin(s, axis=0)

        fns = {
            "edgeasd": (lambda q=q: bank.score(q)) if m == 1 else (lambda Q=Q: bank.score(Q)),
            "numpy": numpy_one if m == 1 else numpy_batch,
            "bound": lambda: _read_all(yy),
        }
        if m > 1:
            fns["numpy_t"] = numpy_batch_t
        reps = max(5, min(200, 4_000_000 // (n * m)))
        t = interleaved(fns, reps)
        bound = f"{t['edgeasd'] / t['bound']:.2f}x the bandwidth bound" if m == 1 else ""
        if m > 1:
            bound = (
                f"numpy as `Y @ Q.T` (the orientation edgeasd multiplies in): "
                f"{1e3 * t['numpy_t']:.2f} ms, edgeasd / that {t['edgeasd'] / t['numpy_t']:.2f}x"
            )
        what = "score one window" if m == 1 else "score a batch of 64"
        rows.append(
            f"| {n:,} | {dim} | {what} | {1e3 * t['edgeasd']:.2f} ms | "
            f"{1e3 * t['numpy']:.2f} ms | {t['edgeasd'] / t['numpy']:.2f}x | {bound} |"
        )
    return rows


def reduction_cost_row(path: Path, n: int, dim: int) -> str:
    """A reduction to ``scoring.max_references`` = N - 1 of the saved bank, and its threshold.

    :func:`reduce_bank` brings it to 90 % of the cap; the calibration after it is the
    from-scratch one of the survivors (the forward replay), read as ``bank.threshold_``.
    """
    bank = load_bank(path, spare=True)
    t = time.perf_counter()
    done = reduce_bank(bank, n - 1)
    t_reduce = time.perf_counter() - t
    t = time.perf_counter()
    threshold = bank.threshold_
    t_cal = time.perf_counter() - t
    assert done is not None and np.isfinite(threshold)
    return (
        f"| {n:,} | {dim} | reduce to `max_references` = {n - 1:,} ({done.before:,} -> "
        f"{done.after:,}) / its new threshold (replay) | {t_reduce:.2f} s / {t_cal:.2f} s | "
        f"| | |"
    )


def summary_rows(n: int, dim: int) -> list[str]:
    """Read-only commands on a saved bank of ``n``, fresh processes (best of 3)."""
    path, _, _ = cached_bank(n, dim)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        config = Path(tmp) / "edgeasd.yaml"
        config.write_text(
            f"paths:\n  state_dir: {state}\n  runtime_dir: {tmp}/run\n  log_dir: {tmp}/log\n"
        )
        from edgeasd.config import load_config
        from edgeasd.config.paths import resolve_paths

        target = resolve_paths(load_config(config)).bank
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(path, target)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
        cmds = (["bank", "summary"], ["bank", "list", "--json"], ["status"], ["tail", "-n", "20"])
        best = {}
        for _ in range(3):
            for cmd in (*cmds, None):
                argv = ["-c", "import numpy"] if cmd is None else ["-m", "edgeasd", *cmd]
                argv += [] if cmd is None else ["--config", str(config)]
                t = time.perf_counter()
                subprocess.run([sys.executable, *argv], env=env, capture_output=True)
                key = "numpy" if cmd is None else " ".join(cmd[:2] if cmd[0] == "bank" else cmd[:1])
                best[key] = min(best.get(key, np.inf), time.perf_counter() - t)
    for key in ("bank summary", "bank list", "status", "tail"):
        rows.append(
            f"| {n:,} | {dim} | `{key}` (fresh process, best of 3) | {best[key]:.2f} s | "
            f"{best['numpy']:.2f} s (`python -c 'import numpy'`) | "
            f"{best[key] / best['numpy']:.1f}x | goal <= 0.5 s |"
        )
    return rows


THREADS = textwrap.dedent("""
    import sys, time, numpy as np
    from threadpoolctl import threadpool_limits
    sys.path.insert(0, {here!r})
    from bench_costs import clustered
    from edgeasd.scoring import ReferenceBank
    n = 2_000  # below ONE_PASS_MIN: the BLAS matrix-vector product (numba's pass has no threads)
    y = clustered(n, 512)
    bank = ReferenceBank(512, exclude_same_group=False)
    bank.enroll(y[:64])
    r = bank.references_
    r.reserve(n); r.y[:n] = y; r.n = n
    r.ysq[:n] = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    r.rho = np.random.default_rng(0).uniform(0.05, 0.2, n)
    q = clustered(1, 512, seed=3)
    out = {{}}
    for k in (1, 2) * 30:
        with threadpool_limits(k):
            t = time.perf_counter(); bank.score(q)
            out.setdefault(k, []).append(time.perf_counter() - t)
            time.sleep(0.01)
    for k, v in out.items():
        print(k, np.median(v), np.percentile(v, 90))
""")


def threads_rows() -> list[str]:
    """One query at N = 2,000 with 1 and 2 BLAS threads, as found and under a competing load."""
    here = str(Path(__file__).resolve().parent)
    rows = []
    for label, hogs in (("as found", 0), ("+ 2 busy processes", 2)):
        spin = "import time\nt = time.time()\nwhile time.time() - t < 60: pass"
        procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(hogs)]
        try:
            out = subprocess.run(
                [sys.executable, "-c", THREADS.format(here=here)],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout.split()
        finally:
            for p in procs:
                p.kill()
                p.wait()
        vals = {int(out[i]): (float(out[i + 1]), float(out[i + 2])) for i in range(0, 6, 3)}
        rows.append(
            f"| {label} | {1e3 * vals[1][0]:.2f} / {1e3 * vals[1][1]:.2f} ms | "
            f"{1e3 * vals[2][0]:.2f} / {1e3 * vals[2][1]:.2f} ms | "
            f"{vals[2][0] / vals[1][0]:.2f}x |"
        )
    return rows


def reduction_rows(fractions=(1.0, 0.5, 0.25)) -> list[str]:
    """Detection after reducing the operating-point banks to a fraction of their size.

    The temporal hold-out protocol of ``bench_operating_point.py`` (choice and held-out sets,
    default model and config): each bank is reduced by :func:`edgeasd.scoring.reduce.reduce_bank`
    to the fraction of its references, then thresholded by the default rule and scored.
    """
    import math

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_operating_point as op

    from edgeasd.evaluation.operating_point import build_bank, evaluate, simulate
    from edgeasd.scoring.reduce import HYSTERESIS, reduce_bank

    sets = [(m, s, simulate(m, s, op.CACHE)) for m, s in op.CHOICE + op.HELDOUT]
    rows = []
    for frac in fractions:
        fa, det, auc, sizes = [], [], [], []
        for _, _, data in sets:
            bank = build_bank(data)
            if frac < 1.0:
                keep = max(1, round(len(bank) * frac))
                reduce_bank(bank, math.ceil(keep / HYSTERESIS))
            sizes.append(len(bank))
            t, _, _ = op.default_rule(bank)
            for r in evaluate(data, bank, t).values():
                fa.append(r["fa_rate"])
                for f in r["faults"].values():
                    auc.append(f["auc"])
                    if f["auc"] >= 0.99:
                        det.append(f["rate"])
        rows.append(
            f"| {frac:.0%} ({min(sizes)}-{max(sizes)}) | {max(fa):.1%} | {np.mean(fa):.1%} | "
            f"{np.mean(det):.1%} | {min(det):.0%} | {np.mean(auc):.3f} |"
        )
    return rows


def main() -> None:
    """Print the cost tables as Markdown."""
    logging.disable(logging.WARNING)  # synthetic banks: "can never alert" warnings
    big_build = os.environ.get("EDGEASD_BENCH_100K_BUILD") == "1"
    load = os.getloadavg()[0]
    print(
        f"Load average {load:.1f} on {os.cpu_count()} cores at the start (other helpers' "
        "work): absolute times swing with it; each ratio compares timings interleaved in "
        "one process. 1 BLAS thread on both sides.\n"
    )
    warm = bank_of(clustered(5000, DIM))  # load every kernel before any timing
    warm.enroll(clustered(GROUP, DIM, seed=1), group="w")
    warm.score(clustered(64, DIM, seed=2))
    warm.score(clustered(1, DIM, seed=3))
    print("### Scaling with the bank size\n")
    print(
        "| N | dim | operation | edgeasd | numpy reference | edgeasd / numpy | note |\n"
        "|---:|---:|---|---:|---:|---:|---|"
    )
    with threadpool_limits(1):
        sizes = [
            int(v) for v in os.environ.get("EDGEASD_BENCH_SIZES", "1000,10000,100000").split(",")
        ]
        for n in sizes:
            for row in scaling_rows(n, DIM, n < 100_000 or big_build):
                print(row, flush=True)
    for n in [s for s in sizes if s <= 10_000]:
        for row in summary_rows(n, DIM):
            print(row, flush=True)
    print()
    print("### What a reduction costs in detection (scoring.max_references)\n")
    print(
        "Operating-point protocol (`bench_operating_point.py`: 6 choice + 8 held-out sets, "
        "source and target condition each), default model and rule; each bank reduced to a "
        "fraction of its references by `edgeasd.scoring.reduce` before it is thresholded.\n"
    )
    print(
        "| references kept (bank sizes) | worst FA | mean FA | mean detection, kinds with "
        "AUC >= 0.99 | lowest | mean AUC, all kinds |\n|---|---:|---:|---:|---:|---:|"
    )
    for row in reduction_rows():
        print(row, flush=True)
    print()
    print("### BLAS threads for one window (N = 2,000, dim 512: numpy's product path)\n")
    print(
        "Median / 90th percentile of one `bank.score(q)`, in a fresh process, 30 "
        "interleaved calls per setting.\n"
    )
    print("| machine state | 1 thread | 2 threads | 2 / 1 |\n|---|---:|---:|---:|")
    for row in threads_rows():
        print(row, flush=True)


if __name__ == "__main__":
    main()
