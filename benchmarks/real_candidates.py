"""Candidate embeddings on labelled real recordings: the table behind MODEL_CARD.md (issue 18).

Every candidate goes through the protocol of ``edgeasd eval-real``
(:mod:`edgeasd.evaluation.real`: per machine type, half of the normals as the agent's bank,
two folds, official AUC/pAUC). Candidates that are not ONNX files yet are window-level numpy
features computed on the same windows.

Candidates (fixed before this table was run; exploratory variants are in MODEL_CARD.md):

* the shipped ``spectral-v1`` and ``directact-v2-int8``, and their ensemble; the opt-in
  ``spectral-v2-int8`` (chosen afterwards by ``benchmarks/real_block_grid.py``) for reference;
* untrained features with temporal structure, from a 64-band log-mel spectrogram (Hann 1024,
  hop 512, in bels): ``flux`` (mean absolute frame-to-frame change per band), ``peak`` (per
  band: maximum minus mean, impacts), ``modulation`` (per 8 pooled bands: log mean magnitude
  of the band envelope's spectrum in 7 octave-wide modulation bands from 0.16 Hz to 25 Hz),
  ``energy-pct`` (percentiles 1-99 of the frame energy around its mean);
* each of the last three in an ensemble with ``spectral-v1`` (weight 1/4 of its distances);
* ``lda``: a linear projection (32-d, shrinkage 0.1) of the ``spectral-v1`` embedding trained
  by linear discriminant analysis with (machine type, normal/anomalous) as classes, **on the
  other machine types only** (leave one type out), and ``v1+lda`` its ensemble with
  ``spectral-v1`` (weight 1/2).

The ``selected`` row is the honest estimate of choosing among the candidates on this data:
for each machine type, the candidate with the best mean AUC over the *other* types, judged
on the held-out type.

Run: ``OMP_NUM_THREADS=1 python benchmarks/real_candidates.py [FOLDER]`` (default
``../shared/data/real-clips``; about a minute on one core).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeasd.audio.mel import log_mel
from edgeasd.config import Config
from edgeasd.embedding.ensemble import combine, load_embedder
from edgeasd.embedding.models import (
    directact_model_path,
    spectral_model_path,
    spectral_v2_model_path,
)
from edgeasd.evaluation.labelled import LabelledClip, scan_labelled
from edgeasd.evaluation.real import RealReport, clip_windows_of, evaluate_embeddings

SR = 16000
WINDOW_SECONDS = 10.0
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-clips"


def l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, ``(n, d)``."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ensemble(parts: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted cosine-distance ensemble: ``1 - cos`` is the weighted mean of the parts'."""
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    return np.concatenate([l2(p) * np.sqrt(wi) for p, wi in zip(parts, w, strict=True)], axis=1)


def temporal_blocks(window: np.ndarray) -> dict[str, np.ndarray]:
    """The untrained temporal feature blocks of one window (module docstring), 1-D each."""
    level = log_mel(window, SR) / 10.0  # (64, frames), bels
    mean = level.mean(axis=1)
    pooled = level.reshape(8, 8, -1).mean(axis=1)
    env = np.abs(np.fft.rfft(pooled - pooled.mean(axis=1, keepdims=True), axis=1))
    edges = (1, 2, 4, 8, 16, 32, 64, env.shape[1])
    mod = np.stack([env[:, a:b].mean(axis=1) for a, b in itertools.pairwise(edges)], axis=1)
    energy = np.log10(np.sum(10.0**level, axis=0))
    return {
        "flux": np.abs(np.diff(level, axis=1)).mean(axis=1),
        "peak": level.max(axis=1) - mean,
        "modulation": np.log10(mod + 1e-3).ravel(),
        "energy-pct": np.percentile(energy - energy.mean(), [1, 5, 10, 25, 50, 75, 90, 95, 99]),
    }


def lda_fit(
    X: np.ndarray, y: np.ndarray, dims: int, shrink: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shrinkage LDA of ``X (n, d)`` by classes ``y``: mean ``(d,)``, projection ``(d, dims)``."""
    from scipy.linalg import eigh

    mu = X.mean(axis=0)
    Xc = X - mu
    sw = np.zeros((X.shape[1], X.shape[1]))
    sb = np.zeros_like(sw)
    for c in np.unique(y):
        Z = Xc[y == c]
        m = Z.mean(axis=0)
        sw += (Z - m).T @ (Z - m)
        sb += len(Z) * np.outer(m, m)
    sw = (1 - shrink) * sw / len(X) + shrink * np.trace(sw / len(X)) / len(sw) * np.eye(len(sw))
    _, vecs = eigh(sb / len(X), sw)
    return mu, vecs[:, ::-1][:, :dims]


def per_type(
    clips: list[LabelledClip],
    windows: dict[str, list[np.ndarray]],
    name: str,
    make: Callable[[list[int], list[int]], list[np.ndarray]],
) -> RealReport:
    """Evaluate a candidate trained on the other types: ``make(train_idx, test_idx)``."""
    groups, types = [], sorted({c.machine for c in clips})
    for t in types:
        test = [i for i, c in enumerate(clips) if c.machine == t]
        train = [i for i, c in enumerate(clips) if c.machine != t]
        r = evaluate_embeddings([clips[i] for i in test], make(train, test), f"{name}:loto")
        groups += r.groups
    return RealReport(f"{name}:loto", "", groups)


def main(argv: list[str] | None = None) -> int:
    """Print the candidate table (markdown) for FOLDER."""
    logging.disable(logging.WARNING)  # the bank's "threshold can never be exceeded" notes
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    args = p.parse_args(argv)
    config = Config()
    clips = scan_labelled(args.folder)
    spectral = load_embedder(spectral_model_path())
    directact = load_embedder(directact_model_path())
    v2 = load_embedder(spectral_v2_model_path())
    W: dict[str, list[np.ndarray]] = {k: [] for k in ("v1", "da", "v2", "flux", "peak")}
    W |= {"modulation": [], "energy-pct": []}
    for c in clips:
        from edgeasd.audio.io import read_audio

        wins = clip_windows_of(read_audio(c.path, sample_rate=SR).samples, SR, 10.0, config)
        x = np.stack(wins)
        W["v1"].append(spectral.embed(x))
        W["da"].append(directact.embed(x))
        W["v2"].append(v2.embed(x))
        blocks = [temporal_blocks(w) for w in wins]
        for k in ("flux", "peak", "modulation", "energy-pct"):
            W[k].append(np.stack([b[k] for b in blocks]).astype(np.float32))

    def ev(name: str, embs: list[np.ndarray]) -> RealReport:
        return evaluate_embeddings(clips, [np.asarray(e, np.float32) for e in embs], name + ":0")

    reports = [
        ev("spectral-v1", W["v1"]),
        ev("directact-v2-int8", W["da"]),
        ev("ensemble v1+da", [combine([a, b]) for a, b in zip(W["v1"], W["da"], strict=True)]),
        ev("spectral-v2-int8", W["v2"]),
    ]
    for k in ("flux", "peak", "modulation", "energy-pct"):
        reports.append(ev(k, [l2(e) for e in W[k]]))
    for k in ("peak", "modulation", "energy-pct"):
        parts = zip(W["v1"], W[k], strict=True)
        reports.append(ev(f"v1+{k}", [ensemble([a, b], [1.0, 0.25]) for a, b in parts]))
    labels = np.array([f"{c.machine}/{c.label}" for c in clips])

    def lda(with_v1: bool) -> Callable[[list[int], list[int]], list[np.ndarray]]:
        def make(train: list[int], test: list[int]) -> list[np.ndarray]:
            X = np.concatenate([W["v1"][i] for i in train])
            y = np.concatenate([[labels[i]] * len(W["v1"][i]) for i in train])
            mu, V = lda_fit(X, y, 32, 0.1)
            out = [(W["v1"][i] - mu) @ V for i in test]
            if with_v1:
                out = [
                    ensemble([W["v1"][i], o], [1.0, 0.5]) for i, o in zip(test, out, strict=True)
                ]
            return [l2(o) for o in out]

        return make

    reports.append(per_type(clips, W, "lda", lda(False)))
    reports.append(per_type(clips, W, "v1+lda", lda(True)))
    print(table(reports, config))
    return 0


def table(reports: list[RealReport], config: Config) -> str:
    """The per-type table, the done-when check and the leave-one-type-out selection."""
    types = sorted({g.machine for g in reports[0].level("type")})
    auc = {r.model_id.split(":")[0]: {g.machine: g for g in r.level("type")} for r in reports}
    names = list(auc)
    lines = [
        "| candidate | " + " | ".join(types) + " | mean AUC / pAUC | per id | meets the bar |",
        "|---|" + "---:|" * (len(types) + 3),
    ]
    best = {t: max(auc["spectral-v1"][t].auc, auc["directact-v2-int8"][t].auc) for t in types}
    bar = max(np.mean([auc[m][t].auc for t in types]) for m in ("spectral-v1", "directact-v2-int8"))
    for r in reports:
        n = r.model_id.split(":")[0]
        g = auc[n]
        mean = np.mean([g[t].auc for t in types])
        ok = mean > bar and all(g[t].auc >= best[t] - 0.05 for t in types)
        ids = r.mean("id")
        lines.append(
            f"| {n} | "
            + " | ".join(f"{g[t].auc:.3f} / {g[t].pauc:.3f}" for t in types)
            + f" | **{mean:.3f}** / {np.mean([g[t].pauc for t in types]):.3f}"
            + f" | {ids:.3f} | {'yes' if ok else 'no'} |"
        )
    shipped = ("spectral-v1", "directact-v2-int8", "ensemble v1+da", "spectral-v2-int8")
    pool = [n for n in names if n not in shipped]
    chosen, held = [], []
    for t in types:
        others = [u for u in types if u != t]
        pick = max(pool, key=lambda n: np.mean([auc[n][u].auc for u in others]))
        chosen.append(pick)
        held.append(auc[pick][t].auc)
    lines.append(
        "| selected (best on the other types) | "
        + " | ".join(f"{a:.3f} ({c})" for a, c in zip(held, chosen, strict=True))
        + f" | **{np.mean(held):.3f}** | | |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
