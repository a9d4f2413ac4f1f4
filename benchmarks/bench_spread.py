"""What narrows the spread between a threshold's evidence and later normal audio (issues 17, 18)?

Issue 17's detection goal (>= 0.90 of the clearly separable fault kinds in every condition,
at <= 5 % false alarms) needs a threshold within about 1.25-1.5x of each condition's highest
later normal score (``threshold_rules``, "Limits"). ``auto`` is a margin times the largest
*evidence* score (each group scored against the bank as it stood when its session began), so
what limits it is the spread of ``later normal maximum / evidence maximum`` across
conditions: 0.45-3.8 on the held-out sets, against a band 2.7x wide. This benchmark measures
two families of changes on the bank side that could narrow it, on the operating-point
protocol (:mod:`edgeasd.evaluation.operating_point`, target from 2 recordings, default model):

1. **Scoring settings**: the density's neighbour count ``scoring.k`` and the normalization
   ``scoring.norm`` (the shipped ``auto`` rule and margin, unchanged).
2. **On-device adaptation** (issue 18, "a small projection trained on the bank's own kept
   enrollment audio with its groups and conditions as classes"): a nuisance attribute
   projection (NAP, as in speaker verification). The ``r`` directions along which the
   bank's recording groups differ most from their condition's mean (the leading right
   singular vectors of the group-mean deviations, each weighted by the square root of its
   window count) are removed from every embedding, which is then renormalized. The
   calibration stays causal: the evidence is the source's second session scored against
   the bank of everything before it, *in the projection learnt from that earlier bank
   alone*; later audio is scored in the projection learnt from the whole earlier bank.
   (Learning one projection from every group and then computing the evidence in it lets the
   evidence see its own directions removed: it understates later sessions 2.6-10x and 96-100 %
   of later normal windows alarm; ``r = 0`` reproduces the shipped threshold.)

Columns: the ratio's range and spread (max / min over the 2 conditions x sets), the margin
the largest ratio would need, and, at the shipped margin 1.25, the operating-point summary
of ``threshold_rules`` (worst false alarms source / target, mean detection of the kinds with
AUC >= 0.99 source / target (worst condition), share of conditions whose threshold lies
within 1.1-3x their later normal maximum).

Run with ``OMP_NUM_THREADS=1 python benchmarks/run.py spread`` (cached embeddings under
``data/operating_point``; a few minutes on one core).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from edgeasd.config import Config
from edgeasd.evaluation.operating_point import (
    build_bank,
    evaluate,
    plan,
    recording_times,
    simulate,
    with_target_recordings,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_operating_point import CHOICE, HELDOUT, MODELS, _config  # the same protocol
from loop_margins import _shipped, _summary

MARGIN = 1.25
SCORING = (("k", 1), ("k", 3), ("k", 5), ("norm", "none"), ("norm", "difference"))
RANKS = (0, 1, 2, 4, 8)


def nuisance_basis(x: np.ndarray, groups: np.ndarray, conditions: np.ndarray, r: int) -> np.ndarray:
    """The ``r`` directions along which recording groups differ most within their condition.

    Parameters
    ----------
    x : (n, dim) float
        Normal embeddings of the bank.
    groups, conditions : (n,)
        Recording group and condition of each row.
    r : int
        How many directions.

    Returns
    -------
    (dim, r) float64
        Orthonormal columns: the leading right singular vectors of the matrix whose rows are
        ``sqrt(n_g) (mean_g - mean_c)`` for each group g of condition c.
    """
    x = np.asarray(x, dtype=np.float64)
    rows = []
    for c in np.unique(conditions):
        in_c = conditions == c
        centre = x[in_c].mean(axis=0)
        for g in np.unique(groups[in_c]):
            m = in_c & (groups == g)
            rows.append((x[m].mean(axis=0) - centre) * np.sqrt(m.sum()))
    _, _, vt = np.linalg.svd(np.array(rows), full_matrices=False)
    return vt[:r].T


def project(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``x`` without its components along ``basis``, rows renormalized: (n, dim) float32."""
    x = np.asarray(x, dtype=np.float64)
    x = x - (x @ basis) @ basis.T
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _projected(data: dict, rows: np.ndarray, r: int) -> dict:
    """The data with every embedding projected by the basis learnt on ``rows``."""
    u = nuisance_basis(data["emb"][rows], data["recording"][rows], data["condition"][rows], r)
    return {**data, "emb": project(data["emb"], u)}


def nap_run(machine: str, data: dict, r: int, cfg: Config) -> tuple[float, dict]:
    """Threshold (causal evidence) and :func:`evaluate` result with a rank-``r`` projection."""
    times = recording_times(machine)
    recs = plan(machine)
    session = np.array([recs[int(i)].recording.session for i in data["recording"]])
    earlier = (data["phase"] == "earlier") & (data["kind"] == "normal")
    source = data["condition"] == "source"
    second = earlier & source & (session > session[earlier & source].min())
    before = _projected(data, earlier & ~second, r)
    before["phase"] = np.where(second, "-", data["phase"])
    evidence = build_bank(before, cfg, times).score(before["emb"][second])
    threshold = MARGIN * float(evidence.max())
    after = _projected(data, earlier, r)
    return threshold, evaluate(after, build_bank(after, cfg, times), threshold)


def shipped_run(machine: str, data: dict, r: int, cfg: Config) -> tuple[float, dict]:
    """The shipped bank and ``auto`` threshold (``r`` unused)."""
    bank = build_bank(data, cfg, recording_times(machine))
    threshold = _shipped(bank, cfg)
    return threshold, evaluate(data, bank, threshold)


def _row(label: str, sets: list[tuple[str, int, dict]], run, r: int, cfg: Config) -> str:
    results, ratios, aucs = [], [], []
    for machine, _, data in sets:
        t, res = run(machine, data, r, cfg)
        results.append((t, res))
        for c in ("source", "target"):
            ratios.append(res[c]["max_normal"] / (t / MARGIN))
            aucs += [f["auc"] for f in res[c]["faults"].values()]
    lo, hi = min(ratios), max(ratios)
    return (
        f"| {label} | {np.mean(aucs):.3f} | {lo:.2f}-{hi:.2f} | {hi / lo:.1f}x | {hi:.2f} | "
        f"{_summary(results)} |"
    )


def main() -> None:
    model, cache = MODELS["spectral-v1 (default)"]
    base = _config(model)
    sets = {
        title: [(m, s, with_target_recordings(simulate(m, s, cache, base), 2)) for m, s in ss]
        for title, ss in (("choice", CHOICE), ("held out", HELDOUT))
    }
    head = (
        "| {what} | mean AUC | later / evidence max | spread | margin needed | worst FA source / "
        "target | mean det. source / target (worst condition) | in 1.1-3 |\n"
        "|---|---:|---|---:|---:|---|---|---:|"
    )
    print(
        "Target from 2 recordings; default model; shipped margin 1.25. Command: "
        "`OMP_NUM_THREADS=1 python benchmarks/run.py spread`.\n"
    )
    print("### Scoring settings (shipped `auto`)\n")
    for title, ss in sets.items():
        print(f"{title} sets:\n\n" + head.format(what="scoring"))
        for key, value in SCORING:
            cfg = dataclasses.replace(
                base, scoring=dataclasses.replace(base.scoring, **{key: value})
            )
            shipped = " (shipped)" if getattr(base.scoring, key) == value else ""
            print(_row(f"`{key}: {value}`{shipped}", ss, shipped_run, 0, cfg))
        print()
    print("### On-device nuisance projection, causal calibration\n")
    for title, ss in sets.items():
        print(f"{title} sets:\n\n" + head.format(what="directions removed"))
        for r in RANKS:
            print(_row(f"{r}" + (" (shipped)" if r == 0 else ""), ss, nap_run, r, base))
        print()
    print(
        "Detection >= 0.90 at <= 5 % false alarms needs every condition's later normal "
        "maximum between 1/1.5 and 1 times the margin x its evidence maximum, a spread of at "
        "most about 1.2-1.5x. Neither family comes near: the density's neighbour count leaves "
        "the spread at 3.0-3.6x (choice) and 6.6-8.5x (held out); `none` and `difference` "
        "widen it on the choice sets; the projection narrows it on the held-out sets only to "
        "5.5-5.8x (1-2 directions) and trades detection for false alarms there (its evidence, "
        "learnt without the directions the earlier sessions differ by, overstates the later "
        "ones: source detection 0.76-0.81 against 0.91). Not adopted; the shipped settings stay."
    )


if __name__ == "__main__":
    main()
