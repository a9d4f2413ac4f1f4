"""Streaming enrollment groups: windows in, bounded memory, audio staged on disk.

:class:`GroupBuilder` takes the windows of one enrollment request one at a time (a file
being read block by block, or live windows as they arrive) and splits them into groups of
at most ``enrollment.group_seconds`` with the rule of
:func:`edgeasd.agent.enrollment.enroll.chunk_windows`.
It holds only each group's embeddings (``dim`` floats per window); the audio to keep for
``bank rebuild`` goes straight into a staged FLAC file per group (:class:`StagedAudio`),
so memory does not grow with the length of the request.

Two ways of keeping a group's audio:

* ``contiguous`` (files): the audio from the group's first to its last good window, as one
  segment, including rejected (silent, clipped) windows in between, as before;
* per window (live): each good window's samples, one segment per window.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from edgeasd.errors import AudioFileError
from edgeasd.filemode import AUDIO_MODE, DIR_MODE, create_file

#: Slack on time comparisons: live start times are UNIX times (float64 resolution ~0.2 us).
TIME_EPS = 1e-6

#: Suffix of staged (not yet committed) group audio in the kept-audio folder.
STAGED_SUFFIX = ".flac.part"


def new_group_id(kind: str) -> str:
    """A unique, sortable group id such as ``live-20261128T132401-3f2a1c``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:6]}"


def starts_new_group(start: float, first: float | None, window_s: float, group_s: float) -> bool:
    """Whether a window starting at ``start`` opens a new group (``first``: the group's start).

    The group, from its first window's start to this window's end, may span at most
    ``group_s`` seconds; ``first`` None means no group is open yet.
    """
    return first is None or start + window_s - first > group_s + TIME_EPS


class StagedAudio:
    """A FLAC file written block by block (16-bit, mono), renamed into place once committed.

    Parameters
    ----------
    path : Path
        The staged file (``<audio_dir>/.<group>.flac.part``); its folder is created.
    sample_rate : int
    """

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = Path(path)
        self.frames = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            create_file(self.path, AUDIO_MODE)  # libsndfile keeps the mode: 0600, any umask
            self._file: sf.SoundFile | None = sf.SoundFile(
                str(self.path), "w", int(sample_rate), 1, "PCM_16", format="FLAC"
            )
        except Exception as exc:  # any failure: the audio is just not kept
            raise AudioFileError(f"cannot stage audio in {self.path}: {exc}") from exc

    def write(self, samples: np.ndarray) -> None:
        """Append ``samples`` (shape (n,), float32 in [-1, 1])."""
        if self._file is None or samples.size == 0:
            return
        try:
            self._file.write(np.clip(samples, -1.0, 1.0))
        except Exception as exc:  # a full disk raises AssertionError
            self.discard()
            raise AudioFileError(f"cannot stage audio in {self.path}: {exc!r}") from exc
        self.frames += samples.size

    def close(self) -> None:
        """Finish and fsync the file."""
        if self._file is None:
            return
        f, self._file = self._file, None
        try:
            f.close()
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except Exception as exc:
            self.path.unlink(missing_ok=True)
            raise AudioFileError(f"cannot stage audio in {self.path}: {exc!r}") from exc

    def discard(self) -> None:
        """Close and delete the staged file."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self.path.unlink()


@dataclass
class _Group:
    group: str
    first: float  # start time of the first window, seconds
    lo: int  # sample index of the first window (contiguous mode)
    written: int  # sample index up to which audio is staged (contiguous mode)
    staged: StagedAudio | None
    closed: Path | None = None  # the staged file once complete
    segments: list[int] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # start time of each good window
    pending: list[tuple[int, np.ndarray]] = field(default_factory=list)  # rejected windows


class GroupBuilder:
    """Split one request's windows into groups as they arrive, staging the audio to keep.

    Parameters
    ----------
    kind : str
        Prefix of the group ids (``"file"``, ``"live"``).
    domain, origin : str
        Copied to every :class:`~edgeasd.agent.enrollment.batch.Batch`.
    sample_rate : int
        Rate of the windows' samples.
    window_seconds, group_seconds : float
        See :func:`edgeasd.agent.enrollment.enroll.chunk_windows`.
    stage_dir : Path, optional
        Where group audio is staged (the kept-audio folder); None keeps no audio.
    contiguous : bool
        Keep the audio a group's windows cover as one segment (files, whose window start
        times are offsets in seconds from sample 0), else one segment per good window.
    """

    def __init__(
        self,
        kind: str,
        domain: str,
        origin: str,
        sample_rate: int,
        window_seconds: float,
        group_seconds: float,
        stage_dir: Path | None = None,
        contiguous: bool = False,
    ) -> None:
        self.kind, self.domain, self.origin = kind, domain, origin
        self.rate = int(sample_rate)
        self.window_seconds, self.group_seconds = float(window_seconds), float(group_seconds)
        self.stage_dir = None if stage_dir is None else Path(stage_dir)
        self.contiguous = contiguous
        self.base = new_group_id(kind)
        self.groups: list[_Group] = []
        self.collected = 0
        self.stage_error: str | None = None  # why audio stopped being staged

    def _open(self, start: float, lo: int) -> _Group:
        name = f"{self.base}-{len(self.groups):03d}"
        staged = None
        if self.stage_dir is not None and self.stage_error is None:
            try:
                staged = StagedAudio(self.stage_dir / f".{name}{STAGED_SUFFIX}", self.rate)
            except AudioFileError as exc:
                self.stage_error = str(exc)
        g = _Group(name, start, lo, lo, staged)
        self.groups.append(g)
        return g

    def _stage(self, g: _Group, start: int, samples: np.ndarray) -> None:
        """Write the part of a window at sample ``start`` beyond what ``g`` already holds."""
        skip = max(0, g.written - start)
        if skip < samples.size and g.staged is not None:
            try:
                g.staged.write(samples[skip:])
            except AudioFileError as exc:
                self.stage_error, g.staged = str(exc), None
        g.written = max(g.written, start + samples.size)

    def add(self, start_time: float, samples: np.ndarray, good: bool = True) -> int | None:
        """Take the next window (in time order).

        Parameters
        ----------
        start_time : float
            Seconds (an offset into the file in contiguous mode, else UNIX time).
        samples : np.ndarray, shape (window_samples,), float32
            Not kept: only written to the staged audio.
        good : bool
            False for a window rejected by the quality check: not enrolled, but its audio
            is kept when it lies between two good windows of a group (contiguous mode).

        Returns
        -------
        int or None
            Index of the group a good window joined (give it its embedding with
            :meth:`embedded`); None for a rejected window.
        """
        g = self.groups[-1] if self.groups else None
        if not good:
            if self.contiguous and g is not None:
                start = round(start_time * self.rate)
                if (start + samples.size) / self.rate - g.first <= self.group_seconds + TIME_EPS:
                    g.pending.append((start, samples))  # bounded: within one group's span
            return None
        start = round(start_time * self.rate)
        if g is None or starts_new_group(
            start_time, g.first, self.window_seconds, self.group_seconds
        ):
            if g is not None:
                g.pending.clear()
                self._close(g)  # one open encoder at a time: memory and descriptors bounded
            g = self._open(start_time, start)
        if self.contiguous:
            for s, x in g.pending:
                self._stage(g, s, x)
            g.pending.clear()
            self._stage(g, start, samples)
            g.segments[:] = [g.written - g.lo]
        else:
            if g.staged is not None:
                self._stage(g, g.written, samples)  # per window: always appended whole
            g.segments.append(samples.size)
        g.starts.append(float(start_time))
        self.collected += 1
        return len(self.groups) - 1

    def _close(self, g: _Group) -> None:
        if g.staged is not None:
            try:
                g.staged.close()
                g.closed = g.staged.path
            except AudioFileError as exc:
                self.stage_error = str(exc)
            g.staged = None

    def embedded(self, index: int, embeddings: np.ndarray) -> None:
        """Record the embedding(s) of the next good window(s) of group ``index``."""
        g = self.groups[index]
        g.embeddings.extend(
            np.asarray(embeddings, dtype=np.float32).reshape(-1, embeddings.shape[-1])
        )

    def finish(self) -> list[Any]:
        """Close the staged files and return one Batch per group, in time order."""
        from edgeasd.agent.enrollment.batch import Batch

        batches = []
        for g in self.groups:
            self._close(g)
            staged = g.closed
            batches.append(
                Batch(
                    embeddings=np.stack(g.embeddings).astype(np.float32, copy=False),
                    domain=self.domain,
                    group=g.group,
                    segments=[],
                    sample_rate=self.rate,
                    origin=self.origin,
                    staged=staged,
                    segment_lengths=tuple(g.segments) if staged is not None else (),
                    window_starts=tuple(g.starts),
                )
            )
        return batches

    def discard(self) -> None:
        """Delete every staged file (the request was refused or abandoned)."""
        for g in self.groups:
            if g.staged is not None:
                g.staged.discard()
            if g.closed is not None:
                g.closed.unlink(missing_ok=True)
