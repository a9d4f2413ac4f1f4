"""A condition's lone first recording: why its later normals overshoot, and what was tried.

Issue 17: after 1 recording of a new condition (the target) is enrolled, its later normal
windows must score within 3x of the other condition's (largest against largest). Under the
``condition`` density rule's first version (a young condition's density: 1.5 x its own
within-group spread x the established conditions' ratio of density to spread) the held-out
sets gave 0.58-4.20. This measures, on the protocol of :mod:`edgeasd.evaluation.operating_point`
(choice sets: fan, pump, valve x seeds 0, 1; held out: seeds 2, 3 and the gearbox):

* what the lone group looks like: its windows' nearest-window distances, and how far the
  condition's later normal windows (another session) lie from it, in units of that spread;
* robust spread statistics in place of the median nearest-window distance;
* the lone group's factor (``density_rules.LONE_SPREAD_FACTOR``), the rule's version 2.

Run with ``OMP_NUM_THREADS=1 python benchmarks/run.py lone_group`` (about 10 minutes on one
core; embeddings cached under ``data/operating_point/`` by ``bench_operating_point.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_operating_point import CACHE, CHOICE, HELDOUT, size_table

from edgeasd.config import Config
from edgeasd.evaluation.operating_point import (
    build_bank,
    recording_times,
    simulate,
    with_target_recordings,
)
from edgeasd.scoring import density_rules

FACTORS = (1.5, 2.0, 2.25, 2.5, 3.0)


def _dist(x: np.ndarray) -> np.ndarray:
    """Pairwise distances as the bank's (cosine: (1 - cos) / 2), shape (n, n)."""
    x = x.astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.clip(0.5 * (1.0 - x @ x.T), 0.0, 1.0)


def _ratio(data: dict, machine: str, enrolled: int, cfg: Config) -> float:
    """Later target / later source normal maximum, target from ``enrolled`` recordings."""
    d = with_target_recordings(data, enrolled)
    bank = build_bank(d, cfg, recording_times(machine))
    sel = (d["phase"] == "later") & (d["kind"] == "normal")
    s, cond = bank.score(d["emb"][sel]), d["condition"][sel]
    return float(s[cond == "target"].max() / s[cond == "source"].max())


def anatomy(sets: list[tuple[str, int, str, dict]], cfg: Config) -> str:
    """Per set: the lone group's spread, where the later target normals lie, the ratios."""
    lines = [
        "| set | machine | seed | lone windows | nearest-window distances (x 1e-4) | "
        "later target normals' distance to it / its spread: median, max | ratio v1 | "
        "ratio v2 |",
        "|---|---|---:|---:|---|---|---:|---:|",
    ]
    for machine, seed, title, data in sets:
        d = with_target_recordings(data, 1)
        lone = (d["phase"] == "earlier") & (d["condition"] == "target")
        later = (d["phase"] == "later") & (d["condition"] == "target") & (d["kind"] == "normal")
        D = _dist(d["emb"][lone])
        np.fill_diagonal(D, np.inf)
        nn = np.sort(D.min(axis=1))
        spread = float(np.median(nn))
        x = d["emb"][np.r_[np.flatnonzero(lone), np.flatnonzero(later)]]
        far = _dist(x)[: lone.sum(), lone.sum() :].min(axis=0) / spread
        ratios = []
        for version_factor in (density_rules.SPREAD_FACTOR, density_rules.LONE_SPREAD_FACTOR):
            with _lone_factor(version_factor):
                ratios.append(_ratio(data, machine, 1, cfg))
        lines.append(
            f"| {title} | {machine} | {seed} | {int(lone.sum())} | "
            + " ".join(f"{1e4 * v:.1f}" for v in nn)
            + f" | {np.median(far):.1f}, {far.max():.1f} | {ratios[0]:.2f} | {ratios[1]:.2f} |"
        )
    return "\n".join(lines)


class _lone_factor:
    """Context: ``density_rules.LONE_SPREAD_FACTOR`` set to ``value`` (restored after)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __enter__(self) -> None:
        self.saved = density_rules.LONE_SPREAD_FACTOR
        density_rules.LONE_SPREAD_FACTOR = self.value

    def __exit__(self, *exc: object) -> None:
        density_rules.LONE_SPREAD_FACTOR = self.saved


def _pairs(d: np.ndarray) -> np.ndarray:
    return d[np.triu_indices(d.shape[0], 1)]


def _apart(d: np.ndarray, lag: int) -> float:
    """Median over windows of the nearest window at least ``lag`` windows away (in a short
    group, at least as far as its farthest window)."""
    idx = np.arange(d.shape[0])
    near = []
    for i in idx:
        gap = np.abs(idx - i)
        near.append(d[i, gap >= min(lag, gap.max())].min())
    return float(np.median(near))


#: Spread statistics of one group's (n, n) distance matrix (diagonal: inf).
STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "median nearest window (v1, v2)": lambda d: float(np.median(d.min(axis=1))),
    "median pairwise": lambda d: float(np.median(_pairs(d))),
    "mean pairwise": lambda d: float(np.mean(_pairs(d))),
    "largest pairwise": lambda d: float(np.max(_pairs(d))),
    "nearest window >= 2 apart": lambda d: _apart(d, 2),
    "nearest window >= 3 apart": lambda d: _apart(d, 3),
}


def _spread_with(stat: Callable[[np.ndarray], float]):
    """A ``density_rules._within_spread`` computing ``stat`` per group (median over groups)."""

    def within(y, ysq, groups, metric):
        vals = []
        for rows in groups:
            if rows.size < 2:
                continue
            x = y[rows].astype(np.float64)
            ss = np.maximum(ysq[rows, None] + ysq[None, rows] - 2.0 * (x @ x.T), 0.0)
            d = np.minimum(0.25 * ss, 1.0) if metric == "cosine" else 0.25 * np.sqrt(ss)
            np.fill_diagonal(d, np.inf)
            vals.append(stat(d))
        return float(np.median(vals)) if vals else float("nan")

    return within


def statistics_table(sets: list[tuple[str, int, str, dict]], cfg: Config) -> str:
    """Later target / source normal maxima under each spread statistic (factors 1.5)."""
    lines = [
        "| spread statistic | 1 recording, choice | 1 recording, held out | "
        "2 recordings, choice | 2 recordings, held out |",
        "|---|---|---|---|---|",
    ]
    saved = density_rules._within_spread
    try:
        with _lone_factor(density_rules.SPREAD_FACTOR):
            for name, stat in STATISTICS.items():
                density_rules._within_spread = _spread_with(stat)
                cells = []
                for e in (1, 2):
                    for title in ("choice", "held out"):
                        r = [_ratio(data, m, e, cfg) for m, _, t, data in sets if t == title]
                        cells.append(
                            f"{min(r):.2f}-{max(r):.2f} ({max(r) / min(r):.1f}x; "
                            f"{sum(1 / 3 <= x <= 3 for x in r)}/{len(r)} within 3x)"
                        )
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    finally:
        density_rules._within_spread = saved
    return "\n".join(lines)


def factor_table(sets: list[tuple[str, int, str, dict]], cfg: Config) -> str:
    """:func:`bench_operating_point.size_table` (target from 1 recording) per lone factor."""
    lines: list[str] = []
    for title in ("choice", "held out"):
        chosen = [(m, s, data) for m, s, t, data in sets if t == title]
        for f in FACTORS:
            with _lone_factor(f):
                rows = size_table(chosen, cfg, sizes=(1,)).splitlines()
            if not lines:
                lines = ["| sets | lone factor " + rows[0], "|---|---:" + rows[1]]
            mark = " (default)" if f == density_rules.LONE_SPREAD_FACTOR else ""
            lines.append(f"| {title} | {f:g}{mark} " + rows[2])
    return "\n".join(lines)


def main() -> None:
    cfg = Config()
    sets = [(m, s, "choice", simulate(m, s, CACHE, cfg)) for m, s in CHOICE] + [
        (m, s, "held out", simulate(m, s, CACHE, cfg)) for m, s in HELDOUT
    ]
    print("Target enrolled from its first recording (one group of 50 s), default model")
    print("(spectral-v1). Ratio: later target / later source normal maximum; v1: the")
    print(
        f"`condition` rule's first version (lone factor {density_rules.SPREAD_FACTOR:g}), v2: the"
    )
    print(f"current one (lone factor {density_rules.LONE_SPREAD_FACTOR:g},")
    print("`edgeasd/scoring/density_rules.py`). Command: `OMP_NUM_THREADS=1 python")
    print("benchmarks/run.py lone_group`.\n")
    print("### The lone group, and where its condition's later normals lie\n")
    print(anatomy(sets, cfg))
    print(
        "\nThe lone group's median nearest-window distance is not moved by its odd far window "
        "(valve seeds 0 and 3, gearbox seed 3); the sets that overshoot are those whose later "
        "recordings (another session) lie farthest from the enrolled one in units of its "
        "spread, which one recording cannot show.\n"
    )
    print("### Spread statistics (factor 1.5 for every young condition)\n")
    print(statistics_table(sets, cfg))
    print("\n### The lone group's factor (target from 1 recording)\n")
    print(factor_table(sets, cfg))
    print(
        "\nChosen on the choice sets, lexicographically: ratios within 2x of 1, then the most "
        "target detection, then the threshold in band most often, then the widest margin "
        "(`density_rules.LONE_SPREAD_FACTOR`). 2 and 4 recordings are unchanged (factor 1.5 "
        "from the second group on; the paper's densities from the fourth)."
    )


if __name__ == "__main__":
    main()
