"""Ensembles of embedding models, and the one factory that builds an embedder from paths.

Kept out of :mod:`edgeasd.embedding.onnx` so that module stays one model's contract and runner.
:func:`load_embedder` is what the agent (``edgeasd.agent.runloop.stages.make_embedder``) and
``edgeasd eval`` call: one path gives a plain :class:`~edgeasd.embedding.onnx.Embedder`, several
give an :class:`EnsembleEmbedder`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeasd.embedding.onnx import Embedder, ModelInfo
from edgeasd.errors import InputError, ModelError

#: Help text of the ensemble's ModelErrors.
_ENSEMBLE_HELP = (
    "every model of an ensemble (a list under model.path, or several --model files) must "
    "take the same windows (sample_rate, window_seconds) and use the cosine metric; "
    "remove the odd one out or re-export it"
)


class EnsembleEmbedder:
    """Several ONNX models whose cosine distances are averaged, as one embedder.

    The embedding of a window is the concatenation of the members' L2-normalized
    embeddings, each scaled by ``1 / sqrt(M)`` for ``M`` members. It has unit norm, and
    its cosine distance to another ensemble embedding is the mean of the members'
    cosine distances::

        e = [u_1, ..., u_M] / sqrt(M)  =>  1 - e.e' = (1/M) sum_i (1 - u_i.u'_i)

    (the same holds for the bank's A = (1 - cos) / 2). So "the members' scores are
    averaged" while one reference bank, one local-density normalization and one
    threshold cover the whole ensemble: nothing downstream knows it is an ensemble.

    This differs from averaging per-member *normalized* scores in two ways: a window has
    one joint nearest reference (the one minimizing the mean distance over members, not
    one nearest reference per member), and each reference has one density constant,
    computed in the joint space, instead of one per member. Raw distances are averaged
    with equal weight, so a member whose distances are typically larger weighs more.

    A member's all-zero embedding (no direction) contributes a zero block; that row's
    norm is then below 1 and the identity above does not hold for it.

    Parameters
    ----------
    paths : sequence of path-like
        At least two ONNX model files, all distinct.
    threads : int
        onnxruntime intra-op threads of each member (members run one after another).

    Attributes
    ----------
    members : list of Embedder
        The member models, in the given order.
    paths : list of pathlib.Path
        Their files.
    info : ModelInfo
        ``name`` ``"ensemble"``, ``version`` ``"<M>x"``, the members' common
        ``sample_rate`` and ``window_seconds``, ``dim`` the sum of the member dims,
        ``metric`` ``"cosine"``, ``training_data`` the members' descriptions joined,
        ``sha256`` the SHA-256 of the members' hex hashes joined by ``","`` in order (so
        the id differs from every member's and depends on the order), and ``members``
        the members' ids.
    threads : int
        As given.

    Raises
    ------
    InputError
        Fewer than two paths, or ``threads`` is not a positive integer.
    ModelError
        A member cannot be loaded; two paths name the same file or two files have the
        same content; members disagree on ``sample_rate`` or ``window_seconds``; a
        member's metric is not cosine.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], threads: int = 1) -> None:
        if isinstance(paths, (str, os.PathLike)) or len(paths) < 2:
            raise InputError(
                f"an ensemble needs at least two model files, got {paths!r}",
                help="use edgeasd.embedding.ensemble.load_embedder, which takes one or more",
            )
        self.paths = [Path(p) for p in paths]
        seen: dict[Path, Path] = {}
        for path in self.paths:
            key = path.resolve()
            if key in seen:
                raise ModelError(
                    f"the ensemble lists model {seen[key]} twice (also as {path}); "
                    "a repeated member would silently count double",
                    help="list each model file once",
                )
            seen[key] = path
        self.members = [Embedder(p, threads=threads) for p in self.paths]
        self.threads = threads
        self._check_members()
        self.info = _ensemble_info(self.members)
        self._dims = [m.info.dim for m in self.members]
        self._scale = 1.0 / math.sqrt(len(self.members))

    def _check_members(self) -> None:
        """Raise ModelError where members cannot share windows or distances."""
        first = self.members[0]
        by_hash: dict[str, Path] = {}
        for m in self.members:
            if m.info.metric != "cosine":
                raise ModelError(
                    f"model {m.path} of the ensemble uses the metric {m.info.metric!r}; "
                    "an ensemble averages cosine distances",
                    help=_ENSEMBLE_HELP,
                )
            if m.info.sha256 in by_hash:
                raise ModelError(
                    f"models {by_hash[m.info.sha256]} and {m.path} of the ensemble are the "
                    "same file content; a repeated member would silently count double",
                    help="list each model once",
                )
            by_hash[m.info.sha256] = m.path
            if m.info.sample_rate != first.info.sample_rate:
                raise ModelError(
                    f"models {first.path} and {m.path} of the ensemble disagree on "
                    f"sample_rate: {first.info.sample_rate} Hz vs {m.info.sample_rate} Hz",
                    help=_ENSEMBLE_HELP,
                )
            if not math.isclose(m.info.window_seconds, first.info.window_seconds, rel_tol=1e-9):
                raise ModelError(
                    f"models {first.path} and {m.path} of the ensemble disagree on "
                    f"window_seconds: {first.info.window_seconds:g} s vs "
                    f"{m.info.window_seconds:g} s",
                    help=_ENSEMBLE_HELP,
                )

    @property
    def window_samples(self) -> int:
        """Samples per input window (common to all members)."""
        return self.info.window_samples

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Embed a batch of windows with every member; concatenate the scaled unit rows.

        Parameters
        ----------
        windows : ndarray, shape (b, n)
            Float audio at ``info.sample_rate``, ``n == info.window_samples``.

        Returns
        -------
        ndarray, shape (b, dim), float32
            ``[u_1, ..., u_M] / sqrt(M)`` per window, ``u_i`` member ``i``'s
            L2-normalized embedding (``dim = sum of the member dims``); unit rows.

        Raises
        ------
        InputError
            ``windows`` is not 2-D, has the wrong length, or holds NaN/inf.
        ModelError
            A member fails, returns the wrong shape, or returns NaN/inf.
        """
        x = np.asarray(windows)
        if x.ndim == 2 and (
            np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
        ):
            x = np.ascontiguousarray(x, dtype=np.float32)  # converted once, not per member
        parts = [m.embed(x) for m in self.members]
        return combine(parts, self._scale)


def combine(parts: Sequence[np.ndarray], scale: float | None = None) -> np.ndarray:
    """Concatenate L2-normalized member embeddings, each scaled by ``scale``.

    Parameters
    ----------
    parts : sequence of ndarray, shape (b, d_i)
        One embedding batch per member.
    scale : float, optional
        Factor of each block; default ``1 / sqrt(len(parts))`` (unit-norm rows).

    Returns
    -------
    ndarray, shape (b, sum of d_i), float32
        Rows whose dot products are the mean of the members' cosine similarities.
        An all-zero member row stays a zero block.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(len(parts))
    b = parts[0].shape[0]
    out = np.empty((b, sum(p.shape[1] for p in parts)), dtype=np.float32)
    col = 0
    for p in parts:
        y = np.asarray(p, dtype=np.float64)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        out[:, col : col + p.shape[1]] = y * (scale / np.where(norms > 0, norms, 1.0))
        col += p.shape[1]
    return out


def _ensemble_info(members: Sequence[Embedder]) -> ModelInfo:
    """The ensemble's ModelInfo (see :class:`EnsembleEmbedder`'s ``info``)."""
    first = members[0].info
    joined = ",".join(m.info.sha256 for m in members)
    return ModelInfo(
        name="ensemble",
        version=f"{len(members)}x",
        sample_rate=first.sample_rate,
        window_seconds=first.window_seconds,
        dim=sum(m.info.dim for m in members),
        metric="cosine",
        training_data="; ".join(f"{m.info.id}: {m.info.training_data}" for m in members),
        sha256=hashlib.sha256(joined.encode("ascii")).hexdigest(),
        members=tuple(m.info.id for m in members),
    )


def load_embedder(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], threads: int = 1
) -> Embedder | EnsembleEmbedder:
    """The embedder of one model file, or the ensemble of several.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        One ONNX file, or a non-empty list of them (a list of one gives a plain
        :class:`~edgeasd.embedding.onnx.Embedder`, with that model's own id).
    threads : int
        onnxruntime intra-op threads (per member).

    Returns
    -------
    Embedder or EnsembleEmbedder

    Raises
    ------
    InputError
        An empty list.
    ModelError
        As :class:`~edgeasd.embedding.onnx.Embedder` and :class:`EnsembleEmbedder`.
    """
    if isinstance(paths, (str, os.PathLike)):
        return Embedder(paths, threads=threads)
    paths = list(paths)
    if not paths:
        raise InputError(
            "no model file given", help="model.path is null, one file or a list of files"
        )
    if len(paths) == 1:
        return Embedder(paths[0], threads=threads)
    return EnsembleEmbedder(paths, threads=threads)
