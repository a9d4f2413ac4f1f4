"""Synthetic clustered embeddings for evaluating scoring and calibration.

Models what an agent enrolls: each *recording* (group) of a domain sits at its own
offset from the domain's centre (session-to-session variation), and its windows
follow a strongly correlated AR(1) walk around that offset, as consecutive,
overlapping windows of one recording do. The classic domain-shift case is a dense
source domain (~990 windows) and a sparse target domain (~10 windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Domain:
    """How one domain's recordings are spread.

    Attributes
    ----------
    centre : (dim,) float64
    session_spread : float
        Std of each recording's offset from the centre, per coordinate.
    window_spread : float
        Stationary std of the windows around their recording's offset.
    correlation : float
        AR(1) coefficient between consecutive windows (overlap).
    """

    centre: np.ndarray
    session_spread: float
    window_spread: float
    correlation: float = 0.9


def recordings(
    rng: np.random.Generator, domain: Domain, sizes: list[int], tag: str
) -> tuple[np.ndarray, list[str]]:
    """Windows of several recordings of a domain.

    Parameters
    ----------
    rng : numpy Generator
    domain : Domain
    sizes : list of int
        Windows per recording.
    tag : str
        Prefix of the group labels.

    Returns
    -------
    X : (sum(sizes), dim) float64
    groups : list of str
        Group label of each row (``f"{tag}-{i}"``).
    """
    dim = domain.centre.shape[0]
    rows, labels = [], []
    a = domain.correlation
    for i, m in enumerate(sizes):
        offset = domain.centre + rng.normal(0.0, domain.session_spread, dim)
        u = rng.normal(0.0, domain.window_spread, dim)
        for _ in range(m):
            rows.append(offset + u)
            labels.append(f"{tag}-{i}")
            u = a * u + np.sqrt(1.0 - a * a) * rng.normal(0.0, domain.window_spread, dim)
    return np.array(rows), labels


def domain_shift_scenario(
    seed: int = 0,
    dim: int = 64,
    n_source: int = 990,
    n_target: int = 10,
    anomaly_shift: float = 0.6,
) -> dict[str, np.ndarray | list[str]]:
    """Dense source, sparse target, unseen normal recordings and anomalies of both.

    Train: the source in 10 recordings, the target in 3 (sizes 4/3/3 at 10). Test:
    5 new recordings of 20 windows per domain, plus anomalous windows of each domain:
    the domain's centre moved by ``anomaly_shift`` (per-coordinate std relative to the
    centre's unit norm spread over ``dim``; the source's recordings spread by 0.02,
    the target's by 0.15). The anomalies are drawn last, so the same seed gives the
    same train and test data for every ``anomaly_shift``.

    Returns
    -------
    dict
        ``train`` (n_source + n_target, dim), ``train_groups``, ``train_domains``;
        ``test`` (200, dim), ``test_domains``; ``anomalies`` (100, dim),
        ``anomaly_domains``.
    """
    rng = np.random.default_rng(seed)
    cs, ct = rng.normal(0, 1, dim), rng.normal(0, 1, dim)
    scale = 1 / np.sqrt(dim)
    cs, ct = cs / np.linalg.norm(cs), ct / np.linalg.norm(ct)
    source = Domain(cs, 0.02 * scale, 0.02 * scale)
    target = Domain(ct, 0.15 * scale, 0.10 * scale)
    per = [n_source // 10 + (1 if i < n_source % 10 else 0) for i in range(10)]
    tsz = [n_target // 3 + (1 if i < n_target % 3 else 0) for i in range(3)]
    xs, gs = recordings(rng, source, per, "source")
    xt, gt = recordings(rng, target, tsz, "target")
    test_s, _ = recordings(rng, source, [20] * 5, "test-source")
    test_t, _ = recordings(rng, target, [20] * 5, "test-target")
    anomalies = []
    for dom in (source, target):
        shifted = Domain(
            dom.centre + rng.normal(0, anomaly_shift * scale, dim),
            dom.session_spread,
            dom.window_spread,
        )
        anomalies.append(recordings(rng, shifted, [10] * 5, "anomaly")[0])
    return {
        "train": np.vstack([xs, xt]),
        "train_groups": gs + gt,
        "train_domains": ["source"] * len(gs) + ["target"] * len(gt),
        "test": np.vstack([test_s, test_t]),
        "test_domains": ["source"] * len(test_s) + ["target"] * len(test_t),
        "anomalies": np.vstack(anomalies),
        "anomaly_domains": ["source"] * 50 + ["target"] * 50,
    }
