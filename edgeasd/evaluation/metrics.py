"""The DCASE Task 2 metrics, computed exactly as the official evaluators compute them.

DCASE 2023–2025 (``dcase202X_task2_evaluator.py``), per machine type and section:

* AUC(source): the source-domain normal clips against **all** anomalous clips of the section;
* AUC(target): likewise with the target-domain normal clips;
* pAUC: the partial AUC at a false-positive rate of at most 0.1 with McClish's correction,
  over all clips of the section (both domains);
* the official score: the harmonic mean of all AUC(source), AUC(target) and pAUC values of all
  machine types and sections (each value floored at machine epsilon), with the arithmetic mean
  of the same values reported alongside.

DCASE 2020: AUC and pAUC per machine ID, arithmetic means per machine type.

The ROC curve is built as scikit-learn's ``roc_curve`` builds it (ties form one step that is
integrated as a straight line), so that ``roc_auc`` equals ``sklearn.metrics.roc_auc_score``
including ``max_fpr``; scikit-learn is not needed at run time.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeasd.errors import InputError

#: The false-positive rate up to which the official pAUC integrates.
MAX_FPR = 0.1
#: The floor the official evaluator applies before the harmonic mean.
_EPS = sys.float_info.epsilon


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise InputError(
            f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise InputError("scores contain NaN or infinite values", help="check the scorer")
    if not np.all((y == 0) | (y == 1)):
        raise InputError("labels must be 0 (normal) or 1 (anomaly)")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise InputError(
            f"AUC needs both normal and anomalous clips, got only one class ({len(y)} clips)",
            help="check the labels or ground-truth files of this section",
        )
    return y, s


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoidal integral of ``y`` over ``x`` (numpy 1.x has no ``np.trapezoid``)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve at every distinct score, starting at (0, 0).

    Parameters
    ----------
    labels : (n,) array of {0, 1}
        1 marks an anomaly (the positive class).
    scores : (n,) float array
        Anomaly scores, higher = more anomalous.

    Returns
    -------
    fpr, tpr : (t + 1,) float64 arrays
        False- and true-positive rates for the ``t`` distinct thresholds, descending.
    """
    y, s = _check(labels, scores)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    # The last index of each run of equal scores is where the threshold changes.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y, dtype=np.float64)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps] / fps[-1]
    tpr = np.r_[0.0, tps] / tps[-1]
    return fpr, tpr


def roc_auc(labels: np.ndarray, scores: np.ndarray, max_fpr: float | None = None) -> float:
    """Area under the ROC curve, optionally partial with McClish's correction.

    Parameters
    ----------
    labels : (n,) array of {0, 1}
        1 marks an anomaly.
    scores : (n,) float array
        Anomaly scores, higher = more anomalous.
    max_fpr : float in (0, 1], optional
        Integrate only up to this false-positive rate and standardize the result so that a
        non-discriminant score gives 0.5 and a perfect one 1 (McClish, 1989).

    Returns
    -------
    float
        Equal to ``sklearn.metrics.roc_auc_score(labels, scores, max_fpr=max_fpr)``.
    """
    fpr, tpr = roc_curve(labels, scores)
    if max_fpr is None or max_fpr == 1:
        return float(_trapezoid(tpr, fpr))
    if not 0 < max_fpr <= 1:
        raise InputError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    t_end = np.interp(max_fpr, fpr[stop - 1 : stop + 1], tpr[stop - 1 : stop + 1])
    partial = float(_trapezoid(np.r_[tpr[:stop], t_end], np.r_[fpr[:stop], max_fpr]))
    min_area = 0.5 * max_fpr**2
    return 0.5 * (1 + (partial - min_area) / (max_fpr - min_area))


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean with each value floored at machine epsilon, as the evaluator does."""
    v = np.maximum(np.asarray(values, dtype=np.float64), _EPS)
    if v.size == 0:
        raise InputError("harmonic mean of no values")
    return float(v.size / np.sum(1.0 / v))


@dataclass(frozen=True)
class SectionResult:
    """The official figures of one machine type and section.

    Attributes
    ----------
    machine, section : str
        Machine type and two-digit section (``"00"``).
    auc_source, auc_target, pauc : float
        As defined in the module docstring; ``auc_all`` is all normals vs all anomalies.
    n_clips : int
        Test clips scored in the section.
    """

    machine: str
    section: str
    auc_source: float
    auc_target: float
    pauc: float
    auc_all: float
    n_clips: int


def section_result(
    machine: str,
    section: str,
    labels: np.ndarray,
    scores: np.ndarray,
    domains: np.ndarray,
    max_fpr: float = MAX_FPR,
) -> SectionResult:
    """The official DCASE 2023–2025 figures of one section.

    Parameters
    ----------
    labels : (n,) array of {0, 1}
        1 = anomaly.
    scores : (n,) float array
        Anomaly scores.
    domains : (n,) array of {0, 1}
        0 = source, 1 = target (the ``ground_truth_domain`` coding).
    """
    y = np.asarray(labels)
    d = np.asarray(domains)
    s = np.asarray(scores, dtype=np.float64)
    if d.shape != y.shape:
        raise InputError(f"domains {d.shape} and labels {y.shape} differ in shape")
    aucs = []
    for dom in (0, 1):
        keep = (d == dom) | (y != 0)
        aucs.append(roc_auc(y[keep], s[keep]))
    return SectionResult(
        machine=machine,
        section=section,
        auc_source=aucs[0],
        auc_target=aucs[1],
        pauc=roc_auc(y, s, max_fpr=max_fpr),
        auc_all=roc_auc(y, s),
        n_clips=len(y),
    )


@dataclass(frozen=True)
class Summary:
    """Averages over sections, as the official evaluator reports them.

    Attributes
    ----------
    official_score : float
        Harmonic mean over all AUC(source), AUC(target) and pAUC values.
    arithmetic_mean : float
        Arithmetic mean of the same values.
    hmean_source, hmean_target, hmean_pauc : float
        Harmonic means of each column over all sections.
    amean_source, amean_target, amean_pauc : float
        Arithmetic means of each column over all sections.
    per_machine : dict
        ``machine -> {"amean": (src, tgt, pauc), "hmean": (src, tgt, pauc)}``.
    sections : list of SectionResult
    """

    official_score: float
    arithmetic_mean: float
    hmean_source: float
    hmean_target: float
    hmean_pauc: float
    amean_source: float
    amean_target: float
    amean_pauc: float
    per_machine: dict[str, dict[str, tuple[float, float, float]]]
    sections: list[SectionResult] = field(repr=False)

    def to_dict(self) -> dict:
        """A JSON-serializable view (sections as a list of dicts)."""
        return asdict(self)


def _columns(rs: Sequence[SectionResult]) -> np.ndarray:
    """(3, n_sections): AUC(source), AUC(target), pAUC."""
    return np.array([[r.auc_source for r in rs], [r.auc_target for r in rs], [r.pauc for r in rs]])


def summarize(results: Sequence[SectionResult]) -> Summary:
    """Official averages of section results (DCASE 2023–2025 evaluator).

    Parameters
    ----------
    results : sequence of SectionResult
        One per machine type and section.
    """
    if not results:
        raise InputError("no section results to summarize", help="check the score directory")
    cols = _columns(results)
    per_machine: dict[str, dict[str, tuple[float, float, float]]] = {}
    for machine in sorted({r.machine for r in results}):
        mc = _columns([r for r in results if r.machine == machine])
        per_machine[machine] = {
            "amean": tuple(float(x) for x in mc.mean(axis=1)),
            "hmean": tuple(harmonic_mean(row) for row in mc),
        }
    return Summary(
        official_score=harmonic_mean(cols.ravel()),
        arithmetic_mean=float(cols.mean()),
        hmean_source=harmonic_mean(cols[0]),
        hmean_target=harmonic_mean(cols[1]),
        hmean_pauc=harmonic_mean(cols[2]),
        amean_source=float(cols[0].mean()),
        amean_target=float(cols[1].mean()),
        amean_pauc=float(cols[2].mean()),
        per_machine=per_machine,
        sections=list(results),
    )


@dataclass(frozen=True)
class IdResult:
    """DCASE 2020 figures of one machine type and machine ID."""

    machine: str
    machine_id: str
    auc: float
    pauc: float
    n_clips: int


def id_result(
    machine: str, machine_id: str, labels: np.ndarray, scores: np.ndarray, max_fpr: float = MAX_FPR
) -> IdResult:
    """AUC and pAUC over all test clips of one machine ID (DCASE 2020 evaluator)."""
    return IdResult(
        machine=machine,
        machine_id=machine_id,
        auc=roc_auc(labels, scores),
        pauc=roc_auc(labels, scores, max_fpr=max_fpr),
        n_clips=len(labels),
    )


def summarize_2020(results: Sequence[IdResult]) -> dict[str, tuple[float, float]]:
    """Arithmetic means of (AUC, pAUC) per machine type, plus ``"all"`` over every ID."""
    if not results:
        raise InputError("no machine-ID results to summarize")
    out: dict[str, tuple[float, float]] = {}
    for machine in sorted({r.machine for r in results}):
        rs = [r for r in results if r.machine == machine]
        out[machine] = (float(np.mean([r.auc for r in rs])), float(np.mean([r.pauc for r in rs])))
    out["all"] = (
        float(np.mean([r.auc for r in results])),
        float(np.mean([r.pauc for r in results])),
    )
    return out
