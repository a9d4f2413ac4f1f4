"""Cutting a stream of audio blocks into fixed-length windows with a hop.

Blocks of any size go in; windows of exactly ``round(window_seconds * sample_rate)``
samples come out, one every ``round(hop_seconds * sample_rate)`` samples. A hop shorter
than the window gives overlapping windows, a longer one skips audio between windows
(to save CPU on a small device).

Each output sample is copied exactly once (into its window); pushed blocks are held by
reference until no future window needs them, so a caller must not modify a block after
pushing it (sources yield fresh arrays).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edgeasd.audio.sources import AudioBlock
from edgeasd.errors import InputError


@dataclass(frozen=True)
class Window:
    """One analysis window.

    Attributes
    ----------
    samples : np.ndarray
        Shape ``(window_samples,)``, ``float32``; owned by the window.
    start_time : float
        UNIX time of the first sample.
    index : int
        0, 1, 2... in the order windows were produced.
    mono : float or None
        The first sample's time on a clock that never steps (:attr:`AudioBlock.mono`);
        None: ``start_time`` never steps. Durations are measured on :attr:`clock`.
    """

    samples: np.ndarray
    start_time: float
    index: int
    mono: float | None = None

    @property
    def clock(self) -> float:
        """The first sample's time for durations: :attr:`mono`, else :attr:`start_time`.

        A wall-clock step moves ``start_time`` (what people read) but never this (issue
        20: a backward step delayed reminders and made durations negative).
        """
        return self.start_time if self.mono is None else self.mono


class Windower:
    """Turn :class:`AudioBlock` s into :class:`Window` s.

    Parameters
    ----------
    sample_rate : int
        Rate of the pushed blocks in Hz.
    window_seconds : float
        Window length.
    hop_seconds : float, optional
        Distance between window starts; ``None`` means ``window_seconds`` (no overlap).

    Notes
    -----
    A block with ``new_segment=True`` (a new file, or audio after dropped frames) discards
    the partial window, so that no window spans a discontinuity; the hop grid restarts at
    that block. Window ``start_time`` is the pushed block's ``time`` plus the offset of the
    window's first sample in it.
    """

    def __init__(
        self, sample_rate: int, window_seconds: float = 10.0, hop_seconds: float | None = None
    ) -> None:
        if sample_rate <= 0:
            raise InputError(f"sample_rate must be positive, got {sample_rate}")
        if not window_seconds > 0:
            raise InputError(f"window_seconds must be positive, got {window_seconds}")
        if hop_seconds is None:
            hop_seconds = window_seconds
        if not hop_seconds > 0:
            raise InputError(f"hop_seconds must be positive, got {hop_seconds}")
        self.sample_rate = int(sample_rate)
        self.window_samples = round(window_seconds * sample_rate)
        self.hop_samples = round(hop_seconds * sample_rate)
        if self.window_samples < 1 or self.hop_samples < 1:
            raise InputError(
                f"window ({window_seconds} s) and hop ({hop_seconds} s) must each hold at "
                f"least one sample at {sample_rate} Hz"
            )
        self._next_index = 0
        self.reset()

    def reset(self) -> None:
        """Drop buffered audio; the next pushed block starts a new hop grid."""
        # (block samples, block time, first sample still needed, block mono) held until no window
        # needs them; times are computed from the block's own time and an offset so that
        # rounding does not accumulate.
        self._chunks: deque[tuple[np.ndarray, float, int, float | None]] = deque()
        self._held = 0  # samples in _chunks
        self._skip = 0  # samples still to discard before the next window starts

    @property
    def buffered(self) -> int:
        """Samples held towards the next window."""
        return self._held

    def push(self, block: AudioBlock) -> list[Window]:
        """Add a block and return the windows it completes (possibly none).

        Parameters
        ----------
        block : AudioBlock
            ``samples`` of shape ``(n,)`` at ``sample_rate``.

        Returns
        -------
        list of Window
            In time order.
        """
        samples = np.asarray(block.samples)
        if samples.ndim != 1:
            raise InputError(f"blocks must be 1-D, got shape {samples.shape}")
        if getattr(block, "new_segment", False):
            self.reset()
        offset = 0
        if self._skip:
            offset = min(self._skip, samples.size)
            self._skip -= offset
        if samples.size > offset:
            mono = getattr(block, "mono", None)
            self._chunks.append((samples, float(block.time), offset, mono))
            self._held += samples.size - offset
        windows = []
        while self._held >= self.window_samples:
            windows.append(self._take())
        return windows

    def _take(self) -> Window:
        """Copy out the next window and advance by one hop."""
        out = np.empty(self.window_samples, dtype=np.float32)
        block, time, offset, mono = self._chunks[0]
        start_time = time + offset / self.sample_rate
        start_mono = None if mono is None else mono + offset / self.sample_rate
        filled = 0
        for block, _, offset, _ in self._chunks:
            n = min(block.size - offset, self.window_samples - filled)
            out[filled : filled + n] = block[offset : offset + n]
            filled += n
            if filled == self.window_samples:
                break
        self._advance(self.hop_samples)
        window = Window(out, start_time, self._next_index, start_mono)
        self._next_index += 1
        return window

    def _advance(self, n: int) -> None:
        """Discard ``n`` samples from the front (remembering any not yet pushed)."""
        while n and self._chunks:
            block, time, offset, mono = self._chunks[0]
            left = block.size - offset
            if left <= n:
                self._chunks.popleft()
                self._held -= left
                n -= left
            else:
                self._chunks[0] = (block, time, offset + n, mono)
                self._held -= n
                n = 0
        self._skip = n
