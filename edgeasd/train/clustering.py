"""Model-card measurements that need no labels beyond the machine type.

With only a few real clips per machine type there are too few anomalies for an AUC,
but one can still check that the embedding groups recordings of the same machine type:
the mean cosine similarity of same-type pairs versus different-type pairs, and how often
a clip's nearest other clip is of its own type (leave-one-out 1-NN accuracy).

Run ``python -m edgeasd.train.clustering --data DIR MODEL.onnx [MODEL.onnx ...]`` to print
the Markdown table of ``MODEL_CARD.md`` (torch-free: it runs the ONNX files).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeasd.errors import InputError


@dataclass(frozen=True)
class Clustering:
    """How well embeddings group by machine type."""

    within: float
    between: float
    nn_accuracy: float
    n_clips: int
    n_types: int

    @property
    def margin(self) -> float:
        """``within - between``."""
        return self.within - self.between


def clustering(embeddings: np.ndarray, types: Sequence[str]) -> Clustering:
    """Same-type vs different-type cosine similarity of unit-norm embeddings.

    Parameters
    ----------
    embeddings : numpy.ndarray, shape (n, dim)
        L2-normalized embeddings.
    types : sequence of str, length n
        Machine type of each clip; at least two types, one of them with two clips.

    Returns
    -------
    Clustering
    """
    x = np.asarray(embeddings, dtype=np.float64)
    t = np.asarray(types)
    if x.ndim != 2 or len(x) != len(t):
        raise InputError(f"need (n, dim) embeddings and n types, got {x.shape}, {len(t)}")
    sim = x @ x.T
    same = t[:, None] == t[None, :]
    off = ~np.eye(len(t), dtype=bool)
    if not (same & off).any() or not (~same).any():
        raise InputError("need at least two machine types and two clips of one type")
    nearest = np.where(off, sim, -np.inf).argmax(axis=1)
    return Clustering(
        within=float(sim[same & off].mean()),
        between=float(sim[~same].mean()),
        nn_accuracy=float((t[nearest] == t).mean()),
        n_clips=len(t),
        n_types=len(set(t.tolist())),
    )


def embed_folder(model: str | Path, root: str | Path) -> tuple[np.ndarray, list[str]]:
    """Embed every ``<type>/**/*.wav`` clip under ``root`` (first window, tiled if short).

    Returns
    -------
    embeddings : numpy.ndarray, shape (n, dim)
    types : list of str
        The first folder level below ``root`` of each clip.
    """
    from edgeasd.audio.io import read_audio
    from edgeasd.embedding.onnx import Embedder
    from edgeasd.train.data import fit_length

    root = Path(root)
    files = sorted(root.glob("*/**/*.wav"))
    if not files:
        raise InputError(f"no .wav files under {root}/<type>/", help="check --data")
    e = Embedder(model)
    x = np.stack(
        [fit_length(read_audio(f, e.info.sample_rate).samples, e.window_samples) for f in files]
    )
    return e.embed(x), [f.relative_to(root).parts[0] for f in files]


def main(argv: list[str] | None = None) -> int:
    """Print the clustering table for each model on a folder of real clips."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="<type>/**/*.wav clips")
    parser.add_argument("models", type=Path, nargs="+", metavar="MODEL.onnx")
    args = parser.parse_args(argv)
    print("| model | within-type cos | between-type cos | margin | 1-NN type accuracy |")
    print("|---|---:|---:|---:|---:|")
    for model in args.models:
        c = clustering(*embed_folder(model, args.data))
        print(
            f"| `{model.name}` | {c.within:.3f} | {c.between:.3f} | {c.margin:.3f} | "
            f"{c.nn_accuracy:.2f} ({c.n_clips} clips, {c.n_types} types) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
