"""Markdown reports of evaluation results (tables) and optional PNG plots (``plot`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeasd.evaluation.approaches import Approach, SectionData
from edgeasd.evaluation.comparison import ApproachResult, OperatingPoint, SweepRow
from edgeasd.evaluation.metrics import IdResult, Summary, summarize_2020


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; floats printed as percentages with two decimals.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequences
        Cells; ``float`` cells in [0, 1] are shown as ``%.2f`` percent, others with ``str``.
    """

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{100 * v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def format_summary(summary: Summary) -> str:
    """The official figures per machine type and section, their means, and the official score.

    All values are percentages; AUC(source/target) use all anomalies of the section, pAUC is over
    all clips of the section (max FPR 0.1, McClish-corrected).
    """
    rows: list[list[object]] = []
    for machine, means in summary.per_machine.items():
        for r in summary.sections:
            if r.machine == machine:
                rows.append([machine, r.section, r.auc_source, r.auc_target, r.pauc])
        rows.append([machine, "arithmetic mean", *means["amean"]])
        rows.append([machine, "harmonic mean", *means["hmean"]])
    rows.append(
        ["all", "arithmetic mean", summary.amean_source, summary.amean_target, summary.amean_pauc]
    )
    rows.append(
        ["all", "harmonic mean", summary.hmean_source, summary.hmean_target, summary.hmean_pauc]
    )
    table = markdown_table(["machine", "section", "AUC (source)", "AUC (target)", "pAUC"], rows)
    return (
        f"{table}\n\n"
        f"official score (harmonic mean of all AUC(source), AUC(target), pAUC): "
        f"{100 * summary.official_score:.2f} %\n"
        f"arithmetic mean of the same values: {100 * summary.arithmetic_mean:.2f} %"
    )


def format_2020(results: Sequence[IdResult]) -> str:
    """DCASE 2020 figures per machine ID with per-type arithmetic means."""
    rows: list[list[object]] = [[r.machine, r.machine_id, r.auc, r.pauc] for r in results]
    for machine, (auc, pauc) in summarize_2020(results).items():
        rows.append([machine, "average", auc, pauc])
    return markdown_table(["machine", "id", "AUC", "pAUC"], rows)


def table_ii(results: Sequence[ApproachResult]) -> str:
    """Table II: harmonic means over sections of AUC per domain, pAUC and the official score."""
    rows = []
    for r in results:
        v = r.row()
        rows.append(
            [r.approach.title, v["source"], v["target"], v["mixed"], v["pauc"], v["official"]]
        )
    return markdown_table(
        ["approach", "source AUC", "target AUC", "mixed AUC", "pAUC", "official score"], rows
    )


def table_iii(approaches: Sequence[Approach]) -> str:
    """Table III's qualitative columns."""

    def yn(flag: bool) -> str:
        return "yes" if flag else "no"

    rows = [
        [a.title, yn(a.needs_domain_labels), yn(a.adapts_to_shift), yn(a.independent)]
        for a in approaches
    ]
    return markdown_table(
        [
            "approach",
            "needs domain labels",
            "adapts to a specific shift",
            "scores test samples independently",
        ],
        rows,
    )


def sweep_table(rows: Sequence[SweepRow]) -> str:
    """The sensitivity sweep as a table (K for knn, r for gwrp)."""
    body = [
        [
            r.density,
            f"K={int(r.value)}" if r.density == "knn" else f"r={r.value:g}",
            r.source,
            r.target,
            r.mixed,
            r.official,
        ]
        for r in rows
    ]
    return markdown_table(
        ["density", "setting", "source AUC", "target AUC", "mixed AUC", "official score"], body
    )


def operating_table(points: Sequence[OperatingPoint]) -> str:
    """False-alarm and detection rates per domain at the label-free calibrated threshold."""
    rows = [
        [
            p.name,
            p.false_alarm["source"],
            p.false_alarm["target"],
            p.detection["source"],
            p.detection["target"],
        ]
        for p in points
    ]
    return markdown_table(
        [
            "approach",
            "false alarms (source)",
            "false alarms (target)",
            "detections (source)",
            "detections (target)",
        ],
        rows,
    )


def _pyplot():
    """matplotlib's pyplot with a file backend, or None when the ``plot`` extra is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_sweep(rows: Sequence[SweepRow], path: Path) -> Path | None:
    """Source / target / mixed AUC over K and r as a PNG (None without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, density, label in ((axes[0], "knn", "K"), (axes[1], "gwrp", "r")):
        sel = [r for r in rows if r.density == density]
        x = np.arange(len(sel))
        for key in ("source", "target", "mixed"):
            ax.plot(x, [100 * getattr(r, key) for r in sel], marker="o", label=key)
        ax.set_xticks(x, [f"{r.value:g}" for r in sel])
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUC (%), harmonic mean over sections")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_distributions(
    sections: Sequence[SectionData], results: Sequence[ApproachResult], path: Path
) -> Path | None:
    """Per-domain histograms of score / threshold, log scale, one panel per result.

    Only results with non-negative scores and positive thresholds (no normalization, ratio)
    are drawn; returns None without matplotlib or without such a result.
    """
    plt = _pyplot()
    shown = [r for r in results if all(s.threshold > 0 and np.all(s.scores >= 0) for s in r.scored)]
    if plt is None or not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.6), squeeze=False)
    for ax, res in zip(axes[0], shown, strict=True):
        rel = [(d, s.scores / s.threshold) for d, s in zip(sections, res.scored, strict=True)]
        allv = np.concatenate([v for _, v in rel])
        low = max(float(allv[allv > 0].min(initial=1.0)), 1e-3) / 1.5
        bins = np.logspace(np.log10(low), np.log10(max(float(allv.max()), 10.0)), 50)
        for dom, color in (("source", "C0"), ("target", "C1")):
            for lab, style in ((0, "-"), (1, "--")):
                sel = [
                    v[(np.asarray(d.test_domains) == dom) & (d.test_labels == lab)] for d, v in rel
                ]
                ax.hist(
                    np.maximum(np.concatenate(sel), low),
                    bins=bins,
                    histtype="step",
                    linestyle=style,
                    color=color,
                    label=f"{dom} {'anomaly' if lab else 'normal'}",
                )
        ax.set_xscale("log")
        ax.axvline(1.0, color="k", linewidth=0.8)
        ax.set_title(res.approach.title)
        ax.set_xlabel("score / calibrated threshold (log)")
    axes[0][0].set_ylabel("test clips")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
