"""A recording's windows for enrollment and scoring: cut, quality-checked, embedded.

Used by file enrollment, ``bank rebuild``, ``edgeasd score`` and the evaluations: the same
windowing and the same quality check as the live path (:class:`~edgeasd.audio.windower.Windower`,
:func:`edgeasd.audio.quality.assess`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeasd.audio import quality
from edgeasd.audio.sources import AudioBlock
from edgeasd.audio.windower import Window, Windower


def embed_windows(embedder: Any, windows: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """Embed a sequence of equal-length windows.

    Parameters
    ----------
    embedder : edgeasd.embedding.onnx.Embedder
    windows : sequence of np.ndarray, each (samples,) float32

    Returns
    -------
    np.ndarray, shape (len(windows), dim), float32
    """
    parts = [
        embedder.embed(np.stack(windows[i : i + batch_size]).astype(np.float32, copy=False))
        for i in range(0, len(windows), batch_size)
    ]
    return np.concatenate(parts).astype(np.float32, copy=False)


def good_windows(
    samples: np.ndarray,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    quality_options: dict[str, Any] | None = None,
) -> tuple[list[Window], int]:
    """Cut ``samples`` into windows and keep those of usable signal quality.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), float32
    sample_rate : int
    window_seconds, hop_seconds : float
    quality_options : dict, optional
        Keyword arguments of :func:`edgeasd.audio.quality.assess` (the ``quality`` section).

    Returns
    -------
    windows : list of Window
        ``start_time`` is the offset in seconds from the start of ``samples``.
    rejected : int
        Windows dropped for silence, clipping or a dead microphone.
    """
    assessed = assessed_windows(samples, sample_rate, window_seconds, hop_seconds, quality_options)
    kept = [w for w, q in assessed if q.ok]
    return kept, len(assessed) - len(kept)


def assessed_windows(
    samples: np.ndarray,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    quality_options: dict[str, Any] | None = None,
) -> list[tuple[Window, quality.Quality]]:
    """Cut ``samples`` into windows, each with its signal quality (none dropped).

    Returns
    -------
    list of (Window, Quality)
        ``start_time`` is the offset in seconds from the start of ``samples``.
    """
    windower = Windower(sample_rate, window_seconds, hop_seconds)
    block = AudioBlock(np.asarray(samples, dtype=np.float32), 0.0)
    return [(w, quality.assess(w.samples, **(quality_options or {}))) for w in windower.push(block)]


def rejection_reasons(qualities: Sequence[quality.Quality]) -> str:
    """Why windows were refused for enrollment, e.g. ``"3 clipped (...), 1 dead"``."""
    counts: dict[str, int] = {}
    for q in qualities:
        if not q.ok:
            counts[q.status] = counts.get(q.status, 0) + 1
    parts = []
    for status, n in counts.items():
        why = " (the bank must not learn clipping as normal)" if status == "clipping" else ""
        parts.append(f"{n} {'clipped' if status == 'clipping' else status}{why}")
    return ", ".join(parts)
