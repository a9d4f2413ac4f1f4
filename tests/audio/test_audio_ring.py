"""The callback ring: lossless while it has room, drops and gaps counted and placed."""

from __future__ import annotations

import itertools
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.audio.ring import CaptureRing

OK = SimpleNamespace(input_overflow=False)
OVERFLOW = SimpleNamespace(input_overflow=True)


def _frames(start: int, n: int, channels: int) -> np.ndarray:
    """Frame k holds the value k in every channel (so positions are checkable)."""
    return np.repeat(np.arange(start, start + n, dtype=np.float32)[:, None], channels, axis=1)


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 64),
    channels=st.integers(1, 3),
    ops=st.lists(st.one_of(st.integers(1, 40), st.just(0)), max_size=60),
)
def test_reads_reproduce_writes_minus_counted_drops(capacity, channels, ops):
    """ops: n > 0 = a callback of n frames, 0 = a read. Reference: a plain list model."""
    sr = 10
    ring = CaptureRing(capacity, channels, sr, resync_seconds=float("inf"))
    ring.first_wall = 1000.0  # fixed clock anchor for checkable times
    stream_pos, expect_stored, gap_starts = 0, [], set()
    free, dropping, segs = capacity, False, []
    for op in [*ops, 0]:
        if op > 0:
            block = _frames(stream_pos, op, channels)
            ring.callback(block, op, None, OK)
            if op <= free:
                if dropping:
                    gap_starts.add(stream_pos)
                expect_stored.extend(range(stream_pos, stream_pos + op))
                free -= op
                dropping = False
            else:
                dropping = True
            stream_pos += op
        else:
            segs += ring.read()
            free = capacity
    got = [int(v) for seg in segs for v in seg.frames[:, 0]]
    assert got == expect_stored
    assert ring.dropped == stream_pos - len(expect_stored) == ring.captured - ring.written
    for i, seg in enumerate(segs):
        assert seg.frames.shape[1] == channels
        assert np.all(seg.frames == seg.frames[:, :1])
        first = int(seg.frames[0, 0])
        # new_segment exactly at the first read and after dropped frames
        assert seg.new_segment == (i == 0 or first in gap_starts)
        # time from the sample clock, counting dropped frames
        assert seg.time == pytest.approx(1000.0 + first / sr)
        # within a segment, frames are contiguous
        assert np.array_equal(seg.frames[:, 0], np.arange(first, first + len(seg.frames)))


def test_overflow_status_is_counted_and_reader_woken():
    ring = CaptureRing(100, 1, 16000)
    assert not ring.event.is_set()
    ring.callback(np.zeros((10, 1), np.float32), 10, None, OVERFLOW)
    ring.callback(np.zeros((10, 1), np.float32), 10, None, OK)
    assert ring.overflows == 1 and ring.callbacks == 2 and ring.available() == 20
    assert ring.event.is_set()


def test_wall_clock_resync():
    """If the device clock runs slow against the wall clock, times are re-anchored."""
    ring = CaptureRing(10_000, 1, 100, resync_seconds=1.0)
    ring.callback(np.zeros((100, 1), np.float32), 100, None, OK)
    t0 = ring.first_wall
    (seg,) = ring.read()
    assert seg.time == pytest.approx(t0)
    ring.callback(np.zeros((100, 1), np.float32), 100, None, OK)
    ring._last_wall += 5.0  # the wall clock says the block ended 5 s later than it did
    (seg,) = ring.read()
    # re-anchored: the block's 100 frames (1 s) end at the wall time of its callback
    assert seg.time == pytest.approx(ring._last_wall - 1.0, abs=1e-6)
    assert seg.time > t0 + 1.0 + 3.0


def test_concurrent_producer_and_consumer_lose_nothing():
    ring = CaptureRing(4096, 2, 48000)
    block = 256
    total = 800 * block
    out: list[np.ndarray] = []
    done = threading.Event()

    def consume():
        while not done.is_set() or ring.available():
            ring.event.wait(0.01)
            ring.event.clear()
            out.extend(seg.frames for seg in ring.read())

    reader = threading.Thread(target=consume)
    reader.start()
    for start in range(0, total, block):
        ring.callback(_frames(start, block, 2), block, None, OK)
        while ring.available() > 4096 - 2 * block:  # a real device waits for its clock
            threading.Event().wait(0.0005)
    done.set()
    reader.join(10)
    got = np.concatenate(out)[:, 1]
    assert ring.dropped == 0
    assert np.array_equal(got, np.arange(total, dtype=np.float32))


def test_segment_reader_resamples_downmixes_and_marks_gaps():
    """Through the ring and the reader: exact one-shot resampling per segment, a gap
    starts a new segment (resampler restarted, time includes the dropped frames)."""
    from edgeasd.audio.resample import resample
    from edgeasd.audio.ring import SegmentReader

    rate = 48000
    ring = CaptureRing(3 * 4800, 2, rate, resync_seconds=float("inf"))
    reader = SegmentReader(rate, 16000, "mix", "fake")
    x = np.random.default_rng(5).uniform(-0.5, 0.5, (10 * 4800, 2)).astype(np.float32)
    chunks = [x[i : i + 4800] for i in range(0, x.shape[0], 4800)]
    blocks = []
    for i, chunk in enumerate(chunks):
        ring.callback(chunk, 4800, None, OK)  # chunk 8 finds the ring full: dropped
        if i not in (5, 6, 7):  # the consumer stalls while chunks 5..8 arrive
            blocks += reader.convert(ring.read())
    assert ring.dropped == 4800
    t0 = ring.first_wall
    first = [b for b in blocks if b.time < t0 + 0.9 - 1e-9]
    second = [b for b in blocks if b.time >= t0 + 0.9 - 1e-9]
    assert [b.new_segment for b in blocks].count(True) == 2
    assert first[0].new_segment and second[0].new_segment
    assert first[0].time == pytest.approx(t0)
    # before the gap: chunks 0..7 resampled as one stream (minus the resampler's lag)
    got_a = np.concatenate([b.samples for b in first])
    ref_a = resample(np.concatenate(chunks[:8]).mean(axis=1), rate, 16000)
    assert ref_a.size - got_a.size < 30
    np.testing.assert_allclose(got_a, ref_a[: got_a.size], atol=1e-6)
    # after it: chunk 9 on its own, timed after the dropped chunk 8
    assert second[0].time == pytest.approx(t0 + 0.9)
    got_b = np.concatenate([b.samples for b in second])
    ref_b = resample(chunks[9].mean(axis=1), rate, 16000)
    np.testing.assert_allclose(got_b, ref_b[: got_b.size], atol=1e-6)
    ends = [b.time + b.samples.size / 16000 for b in blocks]
    assert all(b.time >= e - 1e-9 for b, e in zip(blocks[1:], ends, strict=False))


def test_a_wall_clock_step_moves_stamps_but_never_the_monotonic_times():
    """Issue 20: durations were measured on the wall clock; a step of D shifted them by D."""
    from edgeasd.audio.ring import SegmentReader

    clock = {"wall": 5000.0, "mono": 100.0}
    ring = CaptureRing(
        10_000,
        1,
        100,
        resync_seconds=1.0,
        wall=lambda: clock["wall"],
        monotonic=lambda: clock["mono"],
    )
    reader = SegmentReader(100, 100, "mix", "fake")
    blocks = []
    for i in range(6):
        for key in clock:
            clock[key] += 1.0  # one second of audio per callback
        if i == 3:
            clock["wall"] -= 3600.0  # the system clock steps back an hour
        ring.callback(np.zeros((100, 1), np.float32), 100, None, OK)
        blocks += reader.convert(ring.read())
    monos = [b.mono for b in blocks]
    assert monos == pytest.approx([100.0 + i for i in range(6)])
    segs_wall = [b.time for b in blocks]
    assert all(b >= a for a, b in itertools.pairwise(segs_wall))  # in order
