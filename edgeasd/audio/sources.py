"""Audio sources: where the agent's audio comes from.

Every source yields :class:`AudioBlock` s of ``float32`` mono audio at the model's sample
rate, whatever the device or file delivers. File sources end; live ones do not. The
microphone and demo sources live in their own modules and are imported only when used
(the microphone needs the PortAudio system library).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgeasd.errors import AudioFileError, InputError


@dataclass(frozen=True)
class AudioBlock:
    """A block of consecutive samples.

    Attributes
    ----------
    samples : np.ndarray
        Shape ``(n,)``, ``float32`` mono in [-1, 1] at the source's ``sample_rate``.
    time : float
        UNIX time of the first sample.
    new_segment : bool
        The block does not continue the previous one (a new file, or audio after dropped
        frames); a windower discards its partial window.
    source : str or None
        Where the audio comes from (file name, device name), for logs.
    mono : float or None
        The first sample's time on a clock that never steps (``time.monotonic()`` for live
        capture), for durations; None: ``time`` never steps (a file's or the demo's
        clock, counted in samples from its start).
    """

    samples: np.ndarray
    time: float
    new_segment: bool = False
    source: str | None = field(default=None, compare=False)
    mono: float | None = field(default=None, compare=False)


@runtime_checkable
class Source(Protocol):
    """What the daemon needs from a source."""

    sample_rate: int

    def blocks(self) -> Iterator[AudioBlock]:
        """Yield blocks until the source ends (files) or is closed (live sources)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters for ``status``: at least ``frames`` and ``overflows``."""
        ...

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
        ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...


class BaseSource:
    """Context-manager plumbing shared by the sources."""

    sample_rate: int

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        """Release resources."""


class Pacer:
    """Sleep so that blocks leave at real-time pace (or not at all when disabled).

    Parameters
    ----------
    sample_rate : int
        Rate of the paced audio.
    realtime : bool
        Whether to pace at all.
    """

    def __init__(self, sample_rate: int, realtime: bool) -> None:
        self.sample_rate, self.realtime = sample_rate, realtime
        self.start_wall = time.time()
        self._start_mono = time.monotonic()
        self.frames = 0

    def advance(self, n: int) -> float:
        """Account for a block of ``n`` samples, wait until it has "arrived".

        Returns
        -------
        float
            UNIX time of the block's first sample.
        """
        t = self.start_wall + self.frames / self.sample_rate
        self.frames += n
        if self.realtime:
            delay = self._start_mono + self.frames / self.sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return t


class FileSource(BaseSource):
    """Replay a WAV/FLAC file, or every WAV/FLAC file of a directory in name order.

    Each file is streamed in blocks, downmixed (or one channel picked) and resampled to
    ``sample_rate``; each file starts a new segment (no window spans two files).

    Parameters
    ----------
    path : path-like
        A file or a directory.
    sample_rate : int
        Output rate (the model's).
    realtime : bool
        Deliver at real-time pace (blocks leave when their last sample "has arrived");
        otherwise as fast as the consumer takes them.
    loop : bool
        Start over after the last file, forever.
    channel : "mix" or int
        Channel selection, as in :func:`edgeasd.audio.io.read_audio`.
    block_seconds : float
        Length of the yielded blocks.

    Raises
    ------
    AudioFileError
        The path does not exist or a directory holds no WAV/FLAC files. Unreadable files
        raise when they are reached.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        realtime: bool = False,
        loop: bool = False,
        channel: str | int = "mix",
        block_seconds: float = 1.0,
    ) -> None:
        from edgeasd.audio.io import list_audio_files

        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.realtime, self.loop, self.channel = bool(realtime), bool(loop), channel
        if not block_seconds > 0:
            raise InputError(f"block_seconds must be positive, got {block_seconds}")
        self.block_frames = max(1, round(block_seconds * self.sample_rate))
        if self.path.is_dir():
            self.files = list_audio_files(self.path)
            if not self.files:
                raise AudioFileError(
                    f"no WAV or FLAC files in {self.path}",
                    help="put .wav or .flac recordings there, or point to a single file",
                )
        elif self.path.exists():
            self.files = [self.path]
        else:
            raise AudioFileError(f"audio path not found: {self.path}", help="check the path")
        self._closed = False
        self._frames = 0
        self._files_done = 0
        self._current: str | None = None

    def blocks(self) -> Iterator[AudioBlock]:
        """Yield the files' audio; ends after the last file unless ``loop``."""
        from edgeasd.audio.io import iter_audio

        pacer = Pacer(self.sample_rate, self.realtime)
        while not self._closed:
            for path in self.files:
                self._current = str(path)
                first = True
                pending = np.zeros(0, dtype=np.float32)
                # NaN bursts pass: the daemon makes such windows `nan` events, not a crash
                chunks = iter_audio(path, self.sample_rate, self.channel, allow_nonfinite=True)
                for chunk in chunks:
                    pending = np.concatenate([pending, chunk]) if pending.size else chunk
                    while pending.size >= self.block_frames:
                        block, pending = pending[: self.block_frames], pending[self.block_frames :]
                        yield self._block(block, pacer, first)
                        first = False
                        if self._closed:
                            return
                if pending.size:
                    yield self._block(pending, pacer, first)
                self._files_done += 1
                if self._closed:
                    return
            if not self.loop:
                return

    def _block(self, samples: np.ndarray, pacer: Pacer, first: bool) -> AudioBlock:
        t = pacer.advance(samples.size)
        self._frames += samples.size
        return AudioBlock(samples, t, new_segment=first, source=self._current)

    def stats(self) -> dict[str, Any]:
        """``frames`` (at ``sample_rate``), ``overflows`` (always 0), ``files`` done,
        ``current_file``."""
        return {
            "kind": "file",
            "frames": self._frames,
            "overflows": 0,
            "files": self._files_done,
            "current_file": self._current,
        }

    def close(self) -> None:
        """Stop after the current block."""
        self._closed = True
