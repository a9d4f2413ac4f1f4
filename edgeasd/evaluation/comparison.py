"""Compare approaches over sections: Table II, the K / r sensitivity sweep, the operating point.

Works on embeddings (:class:`~edgeasd.evaluation.approaches.SectionData`), so it is independent
of how they were computed. Per domain, following the official evaluator: *source* is AUC of the
source normals against all anomalies of the section, *target* likewise, *mixed* is all normals
against all anomalies; each is the harmonic mean over sections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeasd.agent.alerts.decision import label_scores
from edgeasd.evaluation.approaches import (
    Approach,
    Scored,
    SectionData,
    bank_scores,
    bank_scores_per_rule,
)
from edgeasd.evaluation.metrics import Summary, harmonic_mean, section_result, summarize

#: GWRP decays of the sweep (the paper's Fig. 3).
SWEEP_R = (0.0, 0.5, 0.9, 0.99, 1.0)
#: Label-free threshold rules compared at the operating point.
THRESHOLD_RULES = ("auto", "quantile", "gamma")


@dataclass(frozen=True)
class ApproachResult:
    """One approach over all sections.

    Attributes
    ----------
    summary : Summary
        Official figures (per section and averaged).
    mixed : float
        Harmonic mean over sections of AUC (all normals vs all anomalies).
    scored : list of Scored
        Test scores and threshold per section, in the order of the sections.
    """

    approach: Approach
    summary: Summary
    mixed: float
    scored: list[Scored]

    def row(self) -> dict[str, float]:
        """``source``, ``target``, ``mixed``, ``pauc``, ``official`` (fractions)."""
        s = self.summary
        return {
            "source": s.hmean_source,
            "target": s.hmean_target,
            "mixed": self.mixed,
            "pauc": s.hmean_pauc,
            "official": s.official_score,
        }


def _domain_codes(d: SectionData) -> np.ndarray:
    return (np.asarray(d.test_domains) == "target").astype(int)


def evaluate(sections: Sequence[SectionData], approach: Approach) -> ApproachResult:
    """Run ``approach`` on every section and compute the official figures."""
    scored, results = [], []
    for d in sections:
        s = approach.run(d)
        scored.append(s)
        results.append(
            section_result(d.machine, d.section, d.test_labels, s.scores, _domain_codes(d))
        )
    summary = summarize(results)
    return ApproachResult(approach, summary, harmonic_mean([r.auc_all for r in results]), scored)


def compare(
    sections: Sequence[SectionData], approaches: Iterable[Approach], progress: bool = False
) -> list[ApproachResult]:
    """:func:`evaluate` for each approach (with a progress bar when ``progress``)."""
    items = list(approaches)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="approaches", unit="approach")
    return [evaluate(sections, a) for a in items]


def k_values(n_refs: int) -> list[int]:
    """K of the sweep: 1, 2, 4, ... below ``n_refs - 1``, then ``n_refs - 1`` (all others)."""
    ks, k = [], 1
    while k < n_refs - 1:
        ks.append(k)
        k *= 2
    return [*ks, max(n_refs - 1, 1)]


@dataclass(frozen=True)
class SweepRow:
    """One setting of the sweep; ``value`` is K (``density == "knn"``) or r (``"gwrp"``)."""

    density: str
    value: float
    source: float
    target: float
    mixed: float
    official: float


def sweep(
    sections: Sequence[SectionData], norm: str = "ratio", progress: bool = False
) -> list[SweepRow]:
    """The sensitivity sweep of the proposed normalization (paper, Fig. 3).

    K runs over :func:`k_values` of the smallest section's reference count (K = N - 1 means
    every other reference); r over :data:`SWEEP_R`.
    """
    n_min = min(len(d.train) for d in sections)
    settings = [("knn", float(k)) for k in k_values(n_min)] + [("gwrp", r) for r in SWEEP_R]
    if progress:
        from tqdm import tqdm

        settings = tqdm(settings, desc="sweep", unit="setting")
    rows = []
    for density, value in settings:
        kw = {"k": int(value)} if density == "knn" else {"r": value}

        def run(d: SectionData, density: str = density, kw: dict = kw) -> Scored:
            # the sweep reports AUCs only: no threshold, so no calibration pass
            return bank_scores(
                d.train, d.test, density, norm=norm, domains=d.train_domains, threshold=False, **kw
            )

        a = Approach(f"{density}-{value:g}", "", False, False, True, run)
        r = evaluate(sections, a).row()
        rows.append(SweepRow(density, value, r["source"], r["target"], r["mixed"], r["official"]))
    return rows


@dataclass(frozen=True)
class OperatingPoint:
    """Rates at the bank's label-free calibrated threshold, pooled over sections.

    Attributes
    ----------
    false_alarm : dict
        ``domain -> fraction of normal test clips scored above the threshold``.
    detection : dict
        ``domain -> fraction of anomalous test clips scored above the threshold``.
    n_normal, n_anomaly : dict
        Clip counts behind each rate.
    """

    name: str
    false_alarm: dict[str, float]
    detection: dict[str, float]
    n_normal: dict[str, int]
    n_anomaly: dict[str, int]


def _rates(name: str, sections: Sequence[SectionData], scored: Sequence[Scored]) -> OperatingPoint:
    """Rates from the agent's own verdicts (:func:`edgeasd.agent.alerts.decision.label_scores`).

    A section without a finite threshold is uncalibrated: its clips get no verdict, and a
    rate pooling any of them is NaN (never counted as "no alarm").
    """
    fa, det, nn, na = {}, {}, {}, {}
    for dom in ("source", "target"):
        hits = {0: 0, 1: 0}
        counts = {0: 0, 1: 0}
        unknown = {0: False, 1: False}
        for d, s in zip(sections, scored, strict=True):
            sel = np.asarray(d.test_domains) == dom
            labels = label_scores(s.scores, s.threshold)
            for lab in (0, 1):
                m = sel & (np.asarray(d.test_labels) == lab)
                hits[lab] += int(np.sum(labels[m] == "anomalous"))
                counts[lab] += int(np.sum(m))
                unknown[lab] |= bool(np.any(labels[m] == "uncalibrated"))
        nan = float("nan")
        fa[dom] = hits[0] / counts[0] if counts[0] and not unknown[0] else nan
        det[dom] = hits[1] / counts[1] if counts[1] and not unknown[1] else nan
        nn[dom], na[dom] = counts[0], counts[1]
    return OperatingPoint(name, fa, det, nn, na)


def operating_point(
    sections: Sequence[SectionData], result: ApproachResult
) -> OperatingPoint | None:
    """Per-domain false-alarm and detection rates, or None if the approach has no threshold."""
    if any(not np.isfinite(s.threshold) for s in result.scored):
        return None
    return _rates(result.approach.name, sections, result.scored)


def rule_operating_points(
    sections: Sequence[SectionData], rules: Sequence[str] = THRESHOLD_RULES
) -> list[OperatingPoint]:
    """Operating points of the baseline and of ratio normalization (K = 1) per threshold rule.

    Every rule is label-free (:meth:`edgeasd.scoring.ReferenceBank.calibrate`); the point's
    name is ``"<approach>, <rule>"``.
    """
    out = []
    for name, norm in (("nn", "none"), ("knn-ratio", "ratio")):
        per_section = [bank_scores_per_rule(d.train, d.test, rules, norm=norm) for d in sections]
        for rule in rules:
            scored = [by_rule[rule] for by_rule in per_section]
            out.append(_rates(f"{name}, {rule}", sections, scored))
    return out
