"""Windower: against plain slicing of the concatenated stream, timestamps, segments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.audio.sources import AudioBlock
from edgeasd.audio.windower import Windower
from edgeasd.errors import InputError

SR = 100  # small rate: windows of a few dozen samples keep the property test fast


def reference_windows(x: np.ndarray, window: int, hop: int) -> list[tuple[int, np.ndarray]]:
    """(start sample, samples) of every complete window, by plain slicing."""
    return [(s, x[s : s + window]) for s in range(0, x.size - window + 1, hop)]


def _blocks(x: np.ndarray, sizes: list[int], t0: float) -> list[AudioBlock]:
    blocks, pos = [], 0
    for size in [*sizes, x.size]:
        if pos >= x.size:
            break
        part = x[pos : pos + size]
        blocks.append(AudioBlock(part, t0 + pos / SR))
        pos += part.size
    return blocks


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 600),
    window=st.integers(1, 80),
    hop=st.integers(1, 120),
    sizes=st.lists(st.integers(1, 90), max_size=40),
    t0=st.floats(0, 2e9),
)
def test_matches_slicing_reference(n, window, hop, sizes, t0):
    x = np.arange(n, dtype=np.float32)  # sample value == its index
    w = Windower(SR, window / SR, hop / SR)
    assert (w.window_samples, w.hop_samples) == (window, hop)
    got = [win for block in _blocks(x, sizes, t0) for win in w.push(block)]
    ref = reference_windows(x, window, hop)
    assert len(got) == len(ref)
    for k, (win, (start, samples)) in enumerate(zip(got, ref, strict=True)):
        assert win.index == k
        assert win.samples.dtype == np.float32
        np.testing.assert_array_equal(win.samples, samples)
        assert win.start_time == pytest.approx(t0 + start / SR, abs=1e-6)


def test_ten_second_windows_with_half_overlap():
    sr = 16000
    w = Windower(sr, 10.0, 5.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 30 * sr).astype(np.float32)
    t0 = 1_700_000_000.25
    windows = []
    for start in range(0, x.size, 1024):
        windows += w.push(AudioBlock(x[start : start + 1024], t0 + start / sr))
    assert [win.index for win in windows] == [0, 1, 2, 3, 4]
    assert [win.start_time - t0 for win in windows] == pytest.approx([0, 5, 10, 15, 20])
    np.testing.assert_array_equal(windows[3].samples, x[15 * sr : 25 * sr])
    assert w.buffered == 5 * sr


def test_windows_own_their_samples():
    w = Windower(SR, 0.2, 0.1)
    block = np.arange(40, dtype=np.float32)
    first, *_ = w.push(AudioBlock(block, 0.0))
    assert not np.shares_memory(first.samples, block)
    first.samples[:] = -1  # consumers may modify windows freely
    second = w.push(AudioBlock(np.zeros(0, np.float32), 1.0))
    assert second == []
    assert w.buffered == 40 - 3 * 10  # hop 10 samples: windows at 0, 10, 20 taken


def test_new_segment_discards_partial_window_and_restarts_grid():
    w = Windower(SR, 0.5, 0.25)
    assert w.push(AudioBlock(np.ones(40, np.float32), 100.0)) == []
    out = w.push(AudioBlock(np.full(60, 2.0, np.float32), 500.0, new_segment=True))
    assert len(out) == 1
    assert out[0].start_time == 500.0 and np.all(out[0].samples == 2.0)
    assert out[0].index == 0


def test_hop_longer_than_window_skips_audio_across_blocks():
    w = Windower(SR, 0.1, 0.35)  # 10-sample windows every 35 samples
    x = np.arange(100, dtype=np.float32)
    windows = [win for s in range(0, 100, 7) for win in w.push(AudioBlock(x[s : s + 7], s / SR))]
    assert [win.samples[0] for win in windows] == [0, 35, 70]
    assert [win.start_time for win in windows] == pytest.approx([0, 0.35, 0.70])


def test_timestamps_follow_block_times_not_a_counter():
    """A block time that jumps (a clock correction) moves the next window with it."""
    w = Windower(SR, 0.1)
    w.push(AudioBlock(np.zeros(10, np.float32), 0.0))
    (win,) = w.push(AudioBlock(np.zeros(10, np.float32), 42.0))
    assert win.start_time == 42.0


def test_bad_arguments():
    for kwargs in ({"window_seconds": 0}, {"hop_seconds": -1.0}, {"window_seconds": 0.001}):
        with pytest.raises(InputError):
            Windower(SR, **kwargs)
    with pytest.raises(InputError):
        Windower(0)
    with pytest.raises(InputError):
        Windower(SR, 0.1).push(AudioBlock(np.zeros((2, 2), np.float32), 0.0))
