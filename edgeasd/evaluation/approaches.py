"""The score-normalization approaches of the paper's Table II, on one section's embeddings.

Every approach scores a section's test embeddings against its training (normal reference)
embeddings. Where it applies, scoring goes through :class:`edgeasd.scoring.ReferenceBank`
(the agent's engine, cosine distance A = (1 - cos) / 2): the nearest-neighbour baseline
(``norm="none"``), k-means and SMOTE (a modified reference set, then the baseline), domain-wise
standardization (baseline scores, then standardized), and the proposed local-density
normalization (knn / gwrp density, ratio / difference). LOF is computed here from the engine's
distance kernel, since it is not a minimum over references.

Table III's qualitative columns are attributes of each :class:`Approach`:

* ``needs_domain_labels``: uses which references (or test clips) are source and which target;
* ``adapts_to_shift``: tailors the reference set or score scale to the particular source/target
  split seen in the data, so it must be redone for another shift;
* ``independent``: a test clip's score does not depend on the other test clips.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeasd.errors import InputError
from edgeasd.scoring import kernels

#: Means of the source references in the k-means approach (as in the paper).
KMEANS_MEANS = 16
#: Neighbours among target references used by SMOTE (as in the paper).
SMOTE_NEIGHBOURS = 4
#: Neighbours of LOF (scikit-learn's default).
LOF_NEIGHBOURS = 20
#: Decay of the proposed GWRP density in the Table II comparison (the sweep varies it).
GWRP_R = 0.5


@dataclass(frozen=True)
class SectionData:
    """Embeddings of one machine type and section.

    Attributes
    ----------
    train : (n, dim) float32
        Normal reference embeddings.
    train_domains : (n,) str array
        ``"source"`` / ``"target"`` per reference.
    test : (m, dim) float32
    test_domains : (m,) str array
    test_labels : (m,) int array, 1 = anomaly
    test_names : tuple of m str
    """

    machine: str
    section: str
    train: np.ndarray
    train_domains: np.ndarray
    test: np.ndarray
    test_domains: np.ndarray
    test_labels: np.ndarray
    test_names: tuple[str, ...]


@dataclass(frozen=True)
class Scored:
    """Test scores of one approach on one section; ``threshold`` NaN if it has none."""

    scores: np.ndarray
    threshold: float = float("nan")


@dataclass(frozen=True)
class Approach:
    """One row of Table II / III."""

    name: str
    title: str
    needs_domain_labels: bool
    adapts_to_shift: bool
    independent: bool
    run: Callable[[SectionData], Scored]


def unit(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalized, float32, shape unchanged ``(n, dim)``."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InputError("zero embedding vector: cosine distance undefined")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The engine's cosine distance A = (1 - cos) / 2 between rows, shape ``(len(a), len(b))``."""
    return kernels.cross_dist(unit(a), unit(b), kernels.COSINE)


def bank_scores(
    refs: np.ndarray,
    test: np.ndarray,
    density: str = "knn",
    k: int = 1,
    r: float | None = None,
    norm: str = "none",
    domains: np.ndarray | None = None,
    rule: str | None = None,
    threshold: bool = True,
) -> Scored:
    """Score ``test (m, dim)`` against ``refs (n, dim)`` with a ReferenceBank.

    Each reference is its own group (one clip each), so densities use all other references.
    The threshold is the bank's label-free calibrated one, with its default rule unless
    ``rule`` names another (see :meth:`ReferenceBank.calibrate`); ``threshold=False`` skips
    the calibration (its leave-one-out pass costs more than the scoring) and leaves it NaN.
    """
    bank = _bank(refs, density, k, r, norm, domains)
    scores = np.asarray(bank.score(test), dtype=np.float64)
    if not threshold:
        return Scored(scores)
    if rule is not None:
        bank.calibrate(rule=rule)
    return Scored(scores, float(bank.threshold_))


def bank_scores_per_rule(
    refs: np.ndarray, test: np.ndarray, rules: Sequence[str], norm: str = "none"
) -> dict[str, Scored]:
    """:func:`bank_scores` (knn, K = 1) under each calibration rule of ``rules``.

    One bank serves every rule: the scores do not depend on the rule, and the bank keeps its
    leave-one-out scores across ``calibrate`` calls, so only the threshold is redone.
    """
    bank = _bank(refs, "knn", 1, None, norm, None)
    scores = np.asarray(bank.score(test), dtype=np.float64)
    return {rule: Scored(scores, float(bank.calibrate(rule=rule))) for rule in rules}


def _bank(
    refs: np.ndarray,
    density: str,
    k: int,
    r: float | None,
    norm: str,
    domains: np.ndarray | None,
):
    """A cosine ReferenceBank holding ``refs``, each reference its own group."""
    from edgeasd.scoring import ReferenceBank

    bank = ReferenceBank(refs.shape[1], metric="cosine", density=density, k=k, r=r, norm=norm)
    dom = "source" if domains is None else [str(d) for d in domains]
    bank.enroll(refs, domain=dom, group=list(range(len(refs))))
    return bank


def kmeans(x: np.ndarray, n_means: int, seed: int = 0, iters: int = 100) -> np.ndarray:
    """Spherical k-means (cosine) with k-means++ initialization.

    Parameters
    ----------
    x : (n, dim) float array
    n_means : int
        Number of means; all rows are returned (normalized) when ``n <= n_means``.

    Returns
    -------
    (min(n, n_means), dim) float32
        Unit-norm means.
    """
    y = unit(x).astype(np.float64)
    if len(y) <= n_means:
        return y.astype(np.float32)
    rng = np.random.default_rng(seed)
    centers = [y[rng.integers(len(y))]]
    for _ in range(1, n_means):
        d = np.clip(1.0 - np.max(y @ np.array(centers).T, axis=1), 0.0, None)
        p = d / d.sum() if d.sum() > 0 else np.full(len(y), 1 / len(y))
        centers.append(y[rng.choice(len(y), p=p)])
    c = np.array(centers)
    assign = np.full(len(y), -1)
    for _ in range(iters):
        new = np.argmax(y @ c.T, axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(n_means):
            members = y[assign == j]
            if len(members):  # an emptied mean keeps its position
                s = members.sum(axis=0)
                c[j] = s / max(np.linalg.norm(s), 1e-12)
    return c.astype(np.float32)


def smote(
    x: np.ndarray, n_new: int, neighbours: int = SMOTE_NEIGHBOURS, seed: int = 0
) -> np.ndarray:
    """SMOTE: ``n_new`` samples interpolated between rows of ``x`` and their near neighbours.

    Parameters
    ----------
    x : (n, dim) float array
        The minority class (target-domain references); needs ``n >= 2``.
    n_new : int
        Samples to synthesize.
    neighbours : int
        Each sample lies on the segment from a random row to one of its ``neighbours``
        nearest other rows (cosine distance), at a uniform random position.

    Returns
    -------
    (n_new, dim) float32
    """
    x = np.asarray(x, dtype=np.float32)
    if n_new <= 0 or len(x) < 2:
        return np.zeros((0, x.shape[1]), dtype=np.float32)
    k = min(neighbours, len(x) - 1)
    d = distances(x, x)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1, kind="stable")[:, :k]
    rng = np.random.default_rng(seed)
    base = rng.integers(len(x), size=n_new)
    other = nn[base, rng.integers(k, size=n_new)]
    lam = rng.random((n_new, 1)).astype(np.float32)
    return x[base] + lam * (x[other] - x[base])


def lof_scores(refs: np.ndarray, test: np.ndarray, k: int = LOF_NEIGHBOURS) -> np.ndarray:
    """Local outlier factor of each test row w.r.t. ``refs`` (novelty detection).

    Parameters
    ----------
    refs : (n, dim), test : (m, dim) float arrays
    k : int
        Neighbours (capped at ``n - 1``).

    Returns
    -------
    (m,) float64
        LOF (about 1 for inliers, larger for outliers), as scikit-learn's
        ``-LocalOutlierFactor(novelty=True).score_samples`` with the same distance.
    """
    n = len(refs)
    if n < 2:
        raise InputError("LOF needs at least 2 references")
    k = min(k, n - 1)
    d_rr = distances(refs, refs)
    np.fill_diagonal(d_rr, np.inf)
    nn_r = np.argsort(d_rr, axis=1, kind="stable")[:, :k]
    d_nn = np.take_along_axis(d_rr, nn_r, axis=1)
    kdist = d_nn[:, -1]
    lrd_r = 1.0 / (np.mean(np.maximum(d_nn, kdist[nn_r]), axis=1) + 1e-10)
    d_qr = distances(test, refs)
    nn_q = np.argsort(d_qr, axis=1, kind="stable")[:, :k]
    d_qn = np.take_along_axis(d_qr, nn_q, axis=1)
    lrd_q = 1.0 / (np.mean(np.maximum(d_qn, kdist[nn_q]), axis=1) + 1e-10)
    return np.mean(lrd_r[nn_q], axis=1) / lrd_q


def standardize_per_domain(scores: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """Z-score ``scores (m,)`` within each domain of ``domains (m,)`` (all test clips at once)."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.empty_like(s)
    for dom in np.unique(domains):
        sel = domains == dom
        out[sel] = (s[sel] - s[sel].mean()) / max(float(s[sel].std()), 1e-12)
    return out


def _nn(d: SectionData) -> Scored:
    return bank_scores(d.train, d.test, norm="none", domains=d.train_domains)


def _kmeans(d: SectionData) -> Scored:
    src = d.train_domains == "source"
    refs = np.concatenate([kmeans(d.train[src], KMEANS_MEANS), unit(d.train[~src])])
    return bank_scores(refs, d.test, norm="none")


def _smote(d: SectionData) -> Scored:
    tgt = d.train_domains == "target"
    extra = smote(d.train[tgt], int(np.sum(~tgt)) - int(np.sum(tgt)))
    # Interpolants close to an endpoint are near duplicates by construction: the bank's
    # duplicate warning is expected here and would only clutter the evaluation output.
    bank_log = logging.getLogger("edgeasd.scoring.bank")
    level = bank_log.level
    bank_log.setLevel(logging.ERROR)
    try:
        return bank_scores(np.concatenate([d.train, extra]), d.test, norm="none")
    finally:
        bank_log.setLevel(level)


def _lof(d: SectionData) -> Scored:
    return Scored(lof_scores(d.train, d.test))


def _domain_std(d: SectionData) -> Scored:
    return Scored(standardize_per_domain(_nn(d).scores, d.test_domains))


def proposed(
    density: str, norm: str, k: int = 1, r: float | None = None
) -> Callable[[SectionData], Scored]:
    """The local-density normalization with the given density and normalization."""

    def run(d: SectionData) -> Scored:
        return bank_scores(
            d.train, d.test, density=density, k=k, r=r, norm=norm, domains=d.train_domains
        )

    return run


APPROACHES: dict[str, Approach] = {
    a.name: a
    for a in (
        Approach("nn", "nearest neighbour (no normalization)", False, False, True, _nn),
        Approach(
            "kmeans", f"k-means ({KMEANS_MEANS} means of source refs)", True, True, True, _kmeans
        ),
        Approach(
            "smote",
            f"SMOTE of target refs ({SMOTE_NEIGHBOURS} neighbours)",
            True,
            True,
            True,
            _smote,
        ),
        Approach("lof", f"LOF ({LOF_NEIGHBOURS} neighbours)", False, False, True, _lof),
        Approach(
            "domain-std",
            "domain-wise standardization of test scores",
            True,
            True,
            False,
            _domain_std,
        ),
        Approach(
            "knn-ratio",
            "proposed: knn (K=1), ratio",
            False,
            False,
            True,
            proposed("knn", "ratio", k=1),
        ),
        Approach(
            "knn-difference",
            "proposed: knn (K=1), difference",
            False,
            False,
            True,
            proposed("knn", "difference", k=1),
        ),
        Approach(
            "gwrp-ratio",
            f"proposed: gwrp (r={GWRP_R}), ratio",
            False,
            False,
            True,
            proposed("gwrp", "ratio", r=GWRP_R),
        ),
        Approach(
            "gwrp-difference",
            f"proposed: gwrp (r={GWRP_R}), difference",
            False,
            False,
            True,
            proposed("gwrp", "difference", r=GWRP_R),
        ),
    )
}


def select(names: list[str] | None) -> list[Approach]:
    """Approaches by name (all when ``names`` is None)."""
    if names is None:
        return list(APPROACHES.values())
    unknown = [n for n in names if n not in APPROACHES]
    if unknown:
        raise InputError(
            f"unknown approach {unknown[0]!r}", help="choose from: " + ", ".join(APPROACHES)
        )
    return [APPROACHES[n] for n in names]
