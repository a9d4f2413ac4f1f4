"""A preallocated single-producer/single-consumer frame ring for audio callbacks.

The producer is PortAudio's callback thread: :meth:`CaptureRing.callback` copies the
frames into a preallocated array, counts input overflows, and never blocks or allocates
arrays. When the consumer falls behind and the ring is full, the new frames are dropped
(counted) and the position of the gap is recorded, so that the consumer learns where the
audio is discontinuous and what time the frames after the gap have.

:class:`SegmentReader` turns what the consumer reads into model-rate mono
:class:`~edgeasd.audio.sources.AudioBlock` s.

Thread safety relies on the GIL: each counter is written by one thread only, and the
producer publishes ``written`` after the frames (and any gap record) are in place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeasd.audio.io import Channel, to_mono
from edgeasd.audio.resample import StreamResampler
from edgeasd.audio.sources import AudioBlock


@dataclass(frozen=True)
class Segment:
    """Frames read from the ring.

    Attributes
    ----------
    frames : np.ndarray
        Shape ``(n, channels)`` ``float32``, a copy owned by the reader.
    time : float
        UNIX time of the first frame (from the sample clock anchored at the first
        callback, corrected when it drifts from the wall clock by more than
        ``resync_seconds``).
    new_segment : bool
        First frames ever read, or frames following dropped ones.
    mono : float or None
        The first frame's time on the monotonic clock (the same sample clock, anchored and
        corrected against ``time.monotonic()``): durations measured on it never follow a
        step of the wall clock. None: the same as ``time``.
    """

    frames: np.ndarray
    time: float
    new_segment: bool
    mono: float | None = None


class CaptureRing:
    """Ring buffer between an audio callback and the consumer.

    Parameters
    ----------
    capacity : int
        Frames the ring holds.
    channels : int
        Channels per frame.
    sample_rate : int
        Frame rate, for timestamps.
    resync_seconds : float
        Re-anchor timestamps when the sample clock and the wall clock disagree by more.
    max_gaps : int
        Gap records kept between two reads.
    wall, monotonic : callable
        The clocks (``time.time``, ``time.monotonic``; parameters for tests). Frames get
        a time on each: the wall clock's for the stamps people read, the monotonic
        clock's for durations.
    """

    def __init__(
        self,
        capacity: int,
        channels: int,
        sample_rate: int,
        resync_seconds: float = 1.0,
        max_gaps: int = 64,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall, self._monotonic = wall, monotonic
        self.capacity, self.channels, self.sample_rate = int(capacity), int(channels), sample_rate
        self.resync_seconds = resync_seconds
        self.buffer = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self.event = threading.Event()
        # producer-owned counters
        self.written = 0  # frames stored
        self.captured = 0  # frames delivered by the device, stored or dropped
        self.dropped = 0
        self.overflows = 0
        self.callbacks = 0
        self.first_wall: float | None = None  # wall time of the first frame
        self.first_mono: float | None = None  # monotonic time of the first frame
        self._last_wall = 0.0  # wall time at the end of the last callback...
        self._last_mono = 0.0  # ...its monotonic time...
        self._last_captured = 0  # ...and `captured` then
        self._pending_gap = 0
        self._gap_pos = np.zeros(max_gaps, dtype=np.int64)
        self._gap_len = np.zeros(max_gaps, dtype=np.int64)
        self._gaps_written = 0
        # consumer-owned state
        self.read_pos = 0
        self._gaps_read = 0
        self._skipped = 0  # dropped frames before read_pos
        self._offset = 0.0  # wall-clock correction of the sample clock
        self._offset_mono = 0.0  # monotonic-clock correction of the sample clock
        self._started = False

    def callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        """The PortAudio callback: copy ``indata`` in, count overflows, wake the reader.

        Parameters
        ----------
        indata : np.ndarray
            Shape ``(frames, channels)`` ``float32``.
        frames : int
            Frame count.
        time_info : object
            PortAudio timing (unused).
        status : sounddevice.CallbackFlags
            ``input_overflow`` is counted.
        """
        now, now_mono = self._wall(), self._monotonic()
        self.callbacks += 1
        if status and status.input_overflow:
            self.overflows += 1
        if self.first_wall is None:
            self.first_wall = now - frames / self.sample_rate
        if self.first_mono is None:
            self.first_mono = now_mono - frames / self.sample_rate
        w = self.written
        if w - self.read_pos + frames > self.capacity:
            self.dropped += frames
            self._pending_gap += frames
        else:
            if self._pending_gap:
                g = self._gaps_written % self._gap_pos.size
                self._gap_pos[g] = w
                self._gap_len[g] = self._pending_gap
                self._pending_gap = 0
                self._gaps_written += 1
            i = w % self.capacity
            n1 = min(frames, self.capacity - i)
            self.buffer[i : i + n1] = indata[:n1]
            if n1 < frames:
                self.buffer[: frames - n1] = indata[n1:]
            self.written = w + frames
        self.captured += frames
        self._last_wall, self._last_mono = now, now_mono
        self._last_captured = self.captured
        self.event.set()

    def available(self) -> int:
        """Frames stored and not yet read."""
        return self.written - self.read_pos

    def _copy(self, a: int, b: int) -> np.ndarray:
        i, n = a % self.capacity, b - a
        n1 = min(n, self.capacity - i)
        if n1 == n:
            return self.buffer[i : i + n].copy()
        return np.concatenate([self.buffer[i:], self.buffer[: n - n1]])

    def _time(self, pos: int) -> float:
        return self.first_wall + self._offset + (pos + self._skipped) / self.sample_rate

    def _mono(self, pos: int) -> float:
        return self.first_mono + self._offset_mono + (pos + self._skipped) / self.sample_rate

    def _resync(self) -> None:
        lw, lm, lc = self._last_wall, self._last_mono, self._last_captured
        drift = self.first_wall + self._offset + lc / self.sample_rate - lw
        if abs(drift) > self.resync_seconds:
            self._offset -= drift
        drift = self.first_mono + self._offset_mono + lc / self.sample_rate - lm
        if abs(drift) > self.resync_seconds:  # the device's clock against the monotonic one
            self._offset_mono -= drift

    def read(self) -> list[Segment]:
        """Take every stored frame, split where frames were dropped.

        Returns
        -------
        list of Segment
            Empty when nothing is stored.
        """
        end = self.written  # snapshot; gap records with pos < end are published
        if end == self.read_pos:
            return []
        self._resync()
        gaps = []
        while self._gaps_read < self._gaps_written:
            g = self._gaps_read % self._gap_pos.size
            if self._gap_pos[g] >= end:
                break
            gaps.append((int(self._gap_pos[g]), int(self._gap_len[g])))
            self._gaps_read += 1
        segments = []
        cuts = [p for p, _ in gaps if p > self.read_pos] + [end]
        lengths = dict(gaps)
        pos = self.read_pos
        new = not self._started or self.read_pos in lengths
        self._skipped += lengths.get(self.read_pos, 0)
        for cut in cuts:
            segments.append(Segment(self._copy(pos, cut), self._time(pos), new, self._mono(pos)))
            pos, new = cut, True
            self._skipped += lengths.get(cut, 0)
        self._started = True
        self.read_pos = end
        return segments


class SegmentReader:
    """Downmix and resample ring segments into model-rate :class:`AudioBlock` s.

    Parameters
    ----------
    capture_rate : int
        Rate of the segments' frames.
    sample_rate : int
        Output rate (the model's).
    channel : "mix" or int
        Downmix, or the channel to keep.
    name : str
        Device name, recorded as the blocks' ``source``.

    Notes
    -----
    A new segment restarts the resampler and the block clock at the segment's time,
    and the first block made from it has ``new_segment=True`` (even when the
    resampler's lag makes that a later call). Within a segment, block times follow the
    ring's wall-clock corrections but never go backwards.
    """

    def __init__(self, capture_rate: int, sample_rate: int, channel: Channel, name: str) -> None:
        self.capture_rate, self.sample_rate = int(capture_rate), int(sample_rate)
        self.channel, self.name = channel, name
        self._resampler = StreamResampler(self.capture_rate, self.sample_rate)
        self._seg_time = 0.0  # time of the current segment's first frame
        self._seg_mono = 0.0  # its monotonic time
        self._prev_mono_end = -float("inf")  # monotonic end time of the last block
        self._seg_in = 0  # frames of the current segment consumed
        self._seg_out = 0  # output samples made from it
        self._prev_end = 0.0  # end time of the last block
        self._pending_new = False

    def convert(self, segments: list[Segment]) -> list[AudioBlock]:
        """Blocks for ``segments`` (in order); possibly fewer blocks than segments.

        Parameters
        ----------
        segments : list of Segment
            From :meth:`CaptureRing.read`.

        Returns
        -------
        list of AudioBlock
            ``samples`` of shape ``(m,)`` ``float32`` at ``sample_rate``.
        """
        blocks = []
        for seg in segments:
            mono = seg.time if seg.mono is None else seg.mono
            if seg.new_segment:
                self._resampler.reset()
                self._seg_time, self._seg_in, self._seg_out = seg.time, 0, 0
                self._seg_mono = mono
                self._pending_new = True
            else:  # follow the clock corrections of the ring's timestamps
                self._seg_time = seg.time - self._seg_in / self.capture_rate
                self._seg_mono = mono - self._seg_in / self.capture_rate
            self._seg_in += seg.frames.shape[0]
            out = self._resampler.process(to_mono(seg.frames, self.channel))
            if out.size == 0:
                continue
            # output sample m is input time m / sample_rate (the resampler is centred)
            t = max(self._seg_time + self._seg_out / self.sample_rate, self._prev_end)
            m = max(self._seg_mono + self._seg_out / self.sample_rate, self._prev_mono_end)
            self._seg_out += out.size
            self._prev_end = t + out.size / self.sample_rate
            self._prev_mono_end = m + out.size / self.sample_rate
            block = AudioBlock(out, t, new_segment=self._pending_new, source=self.name, mono=m)
            blocks.append(block)
            self._pending_new = False
        return blocks
