"""Polyphase resampling: against a plain convolution, anti-aliasing, streaming equality."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.audio.resample import StreamResampler, design_filter, resample
from edgeasd.errors import InputError

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000]


def reference_resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """y[m] = sum_n up * h[m*down + L - n*up] * x[n], written as plain loops."""
    from math import gcd

    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    h = design_filter(up, down) * up
    half = (h.size - 1) // 2
    n_out = -(-x.size * up // down)
    y = np.zeros(n_out)
    for m in range(n_out):
        acc = 0.0
        for n in range(x.size):
            k = m * down + half - n * up
            if 0 <= k < h.size:
                acc += h[k] * x[n]
        y[m] = acc
    return y


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([(16000, 8000), (8000, 16000), (48000, 16000), (16000, 22050), (3, 2)]),
    st.integers(1, 60),
    st.integers(0, 2**32 - 1),
)
def test_resample_matches_plain_convolution(rates, n, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)
    np.testing.assert_allclose(resample(x, *rates), reference_resample(x, *rates), atol=2e-6)


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(RATES),
    st.sampled_from(RATES),
    st.integers(1, 3000),
    st.integers(0, 2**32 - 1),
)
def test_resample_equals_scipy_resample_poly(sr_in, sr_out, n, seed):
    from math import gcd

    from scipy.signal import firwin, resample_poly

    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    np.testing.assert_allclose(resample(x, sr_in, sr_out), resample_poly(x, up, down), atol=1e-6)
    if up != down:
        taps = 20 * max(up, down) + 1
        scipy_h = firwin(taps, 1 / max(up, down), window=("kaiser", 5.0))
        np.testing.assert_allclose(design_filter(up, down), scipy_h, atol=1e-15)


def _tone(freq: float, sr: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * sr / x.size)


@pytest.mark.parametrize(("sr_in", "sr_out"), [(48000, 16000), (44100, 16000), (16000, 48000)])
def test_tone_keeps_its_frequency(sr_in, sr_out):
    y = resample(_tone(1000.0, sr_in), sr_in, sr_out)
    assert y.size == sr_out
    assert _peak_hz(y, sr_out) == pytest.approx(1000.0, abs=1.5)
    core = y[1000:-1000]  # away from the edges the amplitude is kept
    assert np.sqrt(np.mean(core**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize(
    ("sr_in", "freq"), [(48000, 10000.0), (48000, 12000.0), (48000, 20000.0), (44100, 15000.0)]
)
def test_content_above_new_nyquist_is_removed_not_aliased(sr_in, freq):
    x = _tone(freq, sr_in)
    y = resample(x, sr_in, 16000)
    naive = x[:: sr_in // 16000] if sr_in % 16000 == 0 and freq % 8000 else None
    level_db = 20 * np.log10(np.sqrt(np.mean(y[1000:-1000] ** 2)) / (0.5 / np.sqrt(2)))
    assert level_db < -55, f"{freq} Hz leaked at {level_db:.1f} dB"
    if naive is not None:  # plain decimation would have folded it back at full level
        assert np.sqrt(np.mean(naive**2)) > 0.3


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(RATES),
    st.sampled_from(RATES),
    st.integers(1, 5000),
    st.lists(st.integers(0, 1500), min_size=1, max_size=30),
    st.integers(0, 2**32 - 1),
)
def test_stream_equals_one_shot_at_every_block_boundary(sr_in, sr_out, n, cuts, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)
    ref = resample(x, sr_in, sr_out)
    stream = StreamResampler(sr_in, sr_out)
    parts, pos = [], 0
    for size in cuts:
        parts.append(stream.process(x[pos : pos + size]))
        pos += size
        # everything emitted so far is final: equal to the one-shot prefix
        so_far = np.concatenate(parts)
        np.testing.assert_allclose(so_far, ref[: so_far.size], atol=1e-6)
    parts.append(stream.process(x[pos:]))
    parts.append(stream.flush())
    y = np.concatenate(parts)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_stream_lag_is_bounded_and_reset_restarts():
    stream = StreamResampler(48000, 16000)
    x = np.random.default_rng(1).uniform(-1, 1, 48000).astype(np.float32)
    out = stream.process(x)
    assert 16000 - out.size <= stream.delay_in  # holds back at most the filter's half
    stream.reset()
    again = np.concatenate([stream.process(x), stream.flush()])
    np.testing.assert_allclose(again, resample(x, 48000, 16000), atol=1e-6)


def test_identity_and_bad_arguments():
    x = np.arange(5, dtype=np.float32)
    assert np.array_equal(resample(x, 16000, 16000), x)
    s = StreamResampler(16000, 16000)
    assert np.array_equal(s.process(x), x) and s.flush().size == 0
    with pytest.raises(InputError):
        resample(x, 0, 16000)
    with pytest.raises(InputError):
        resample(x, 16000.5, 16000)
    with pytest.raises(InputError):
        resample(np.zeros((2, 2)), 16000, 8000)
    with pytest.raises(InputError):
        StreamResampler(16000, 8000).process(np.zeros((2, 2)))
