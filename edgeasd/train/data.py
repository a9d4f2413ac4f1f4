"""DCASE-layout training data: file-name parsing, class labels and in-memory clips.

A DCASE 2022–2025 Task 2 dataset (or the output of ``edgeasd synth``, or an
integrator's own recordings named the same way) looks like::

    <root>/<machine>/train/section_00_source_train_normal_0001_<attr>_<value>....wav
    <root>/<machine>/test/section_00_target_test_anomaly_0007_<attr>_<value>....wav

The auxiliary classification task of Direct-ACT uses one class per machine type,
section and attribute string (e.g. ``fan`` × ``section_00`` × ``m-n_X``). File names
are parsed by :mod:`edgeasd.evaluation.datasets` (every DCASE layout, 2020 included:
there the machine ID plays the section's role and all clips count as source domain).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edgeasd.audio.io import read_audio
from edgeasd.errors import InputError
from edgeasd.evaluation.datasets import Clip, scan_dataset


def class_key(clip: Clip) -> str | None:
    """Auxiliary-task class of a clip, or None for a clip without class loss.

    Normal source-domain clips: ``<machine>/section_<nn>/<attributes>``. Anomalous
    clips (only used for fault-aware training, see :class:`ClipSet`):
    ``<machine>/section_<nn>/anomaly``, whatever their domain and attributes. Normal
    target-domain clips: None (no class loss, as in the reference code).
    """
    if clip.label == "anomaly":
        return f"{clip.machine}/section_{clip.section}/anomaly"
    if clip.domain == "target":
        return None
    return f"{clip.machine}/section_{clip.section}/{clip.attributes or '-'}"


def scan(
    root: str | Path, split: str = "train", machines: Sequence[str] | None = None
) -> list[Clip]:
    """The clips of one split in a DCASE-layout folder, sorted.

    Parameters
    ----------
    root : path-like
        Dataset root holding one folder per machine type.
    split : {"train", "test"}
        Which sub-folder to read.
    machines : sequence of str, optional
        Only these machine types (default: all).

    Raises
    ------
    InputError
        When no clip of ``split`` (of the wanted machines) is found.
    """
    clips = [
        c
        for c in scan_dataset(root)
        if c.split == split and (machines is None or c.machine in machines)
    ]
    if not clips:
        raise InputError(
            f"no {split} clips found under {root}"
            + (f" for machines {', '.join(machines)}" if machines else ""),
            help=f"expected <machine>/{split}/section_*.wav files (the DCASE layout)",
        )
    return clips


def fit_length(x: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """Crop ``x`` to ``n`` samples from ``offset``, or tile it when shorter.

    Parameters
    ----------
    x : numpy.ndarray, shape (samples,)
    n : int
        Target length.
    offset : int
        Start of the crop (clipped to the valid range).

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    if len(x) == 0:
        raise InputError("cannot fit an empty signal")
    if len(x) < n:
        x = np.tile(x, -(-n // len(x)))
    offset = int(np.clip(offset, 0, len(x) - n))
    return x[offset : offset + n]


def load_clip(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a clip as mono float32 at ``sample_rate``, shape (samples,)."""
    return read_audio(path, sample_rate).samples


class ClipSet:
    """Clips held in memory as int16 with integer class labels.

    Parameters
    ----------
    clips : sequence of Clip
        The clips (e.g. from :func:`scan`).
    sample_rate : int
        Rate the model expects.
    max_seconds : float
        Longer clips keep only their first ``max_seconds``.
    classes : sequence of str, optional
        Class keys in label order (to reuse a trained model's classes); default: the
        sorted class keys (:func:`class_key`) of the clips. Clips of unknown classes and
        normal target-domain clips get label ``-1`` (no class loss). Anomalous clips
        (fault-aware training) form one class per machine type and section.
    progress : bool
        Show a tqdm bar while loading.

    Attributes
    ----------
    audio : list of numpy.ndarray, each shape (samples,), int16
    labels : numpy.ndarray, shape (n,), int64
    classes : list of str
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        sample_rate: int,
        max_seconds: float = 12.0,
        classes: Sequence[str] | None = None,
        progress: bool = False,
    ) -> None:
        self.clips = list(clips)
        self.sample_rate = sample_rate
        keys = [class_key(c) for c in self.clips]
        if classes is None:
            classes = sorted({k for k in keys if k is not None})
        self.classes = list(classes)
        index = {k: i for i, k in enumerate(self.classes)}
        self.labels = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
        limit = round(max_seconds * sample_rate)
        self.audio = [
            _to_int16(load_clip(c.path, sample_rate)[:limit])
            for c in _maybe_tqdm(self.clips, progress, "loading clips")
        ]

    def __len__(self) -> int:
        return len(self.clips)

    def batch(self, indices: Iterable[int], n: int, rng: np.random.Generator | None) -> np.ndarray:
        """Float32 windows of ``n`` samples; random crop offsets when ``rng`` is given.

        Returns
        -------
        numpy.ndarray, shape (len(indices), n), float32
        """
        out = []
        for i in indices:
            x = self.audio[i]
            off = 0 if rng is None else int(rng.integers(0, max(1, len(x) - n + 1)))
            out.append(fit_length(x, n, off))
        return np.stack(out).astype(np.float32) / 32767.0


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def _maybe_tqdm(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="clip")
