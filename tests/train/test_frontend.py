"""Feature front-end, data helpers and metadata: property tests against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgeasd.errors import InputError
from edgeasd.train.data import fit_length
from edgeasd.train.frontend import (
    fft_factors,
    log_fft_magnitude,
    mel_filterbank,
    next_power_of_two,
    rfft_magnitude,
    stft_magnitude,
)

signals = arrays(
    np.float32,
    st.integers(1100, 3000),
    elements=st.floats(-1, 1, width=32, allow_nan=False),
)


@given(st.integers(1, 10**7))
def test_next_power_of_two_matches_reference(n):
    p = next_power_of_two(n)
    ref = 1
    while ref < n:
        ref *= 2
    assert p == ref


def test_next_power_of_two_rejects_zero():
    with pytest.raises(InputError):
        next_power_of_two(0)


@given(st.integers(1, 20), st.sampled_from([2, 8, 16, 64, 128]))
def test_fft_factors_are_powers_of_two_that_multiply_to_n(bits, max_radix):
    n = 1 << bits
    factors = fft_factors(n, max_radix)
    assert int(np.prod(factors)) == n
    assert all(f >= 2 and f & (f - 1) == 0 and f <= max_radix for f in factors)
    assert max(factors) <= 2 * min(factors)  # balanced stages
    assert len(factors) == -(-bits // (max_radix.bit_length() - 1))


@pytest.mark.parametrize("n", [0, 1, 3, 96, 1000])
def test_fft_factors_rejects_non_powers_of_two(n):
    with pytest.raises(InputError, match="power of two"):
        fft_factors(n)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 17).flatmap(
        lambda bits: arrays(
            np.float64,
            st.tuples(st.integers(1, 3), st.just(1 << bits)),
            elements=st.floats(-1, 1, allow_nan=False),
        )
    )
)
def test_rfft_magnitude_matches_numpy(x):
    """The matrix-product FFT equals numpy's |rfft| for every length 2 .. 131072."""
    got = rfft_magnitude(torch.from_numpy(x.astype(np.float32))).numpy()
    ref = np.abs(np.fft.rfft(x, axis=-1))
    assert got.shape == ref.shape
    scale = max(1.0, np.abs(x).sum(axis=-1).max())  # bound of every |X_k|
    np.testing.assert_allclose(got, ref, atol=2e-6 * scale)


def test_rfft_magnitude_of_a_sine_is_one_line():
    n = 4096
    x = np.sin(2 * np.pi * 100 * np.arange(n) / n)
    got = rfft_magnitude(torch.from_numpy(x.astype(np.float32))[None])[0].numpy()
    assert np.argmax(got) == 100
    np.testing.assert_allclose(got[100], n / 2, rtol=1e-5)
    assert np.delete(got, 100).max() < 1e-3


def test_stft_rejects_a_hop_that_does_not_divide_the_frame():
    with pytest.raises(InputError, match="hop"):
        stft_magnitude(torch.zeros(1, 4096), 1024, 300)
    with pytest.raises(InputError, match="shorter"):
        stft_magnitude(torch.zeros(1, 1000), 1024, 512)


@settings(max_examples=25, deadline=None)
@given(signals)
def test_stft_magnitude_matches_numpy(x):
    n_fft, hop = 256, 128
    got = stft_magnitude(torch.from_numpy(x)[None], n_fft, hop)[0].numpy()
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = [x[i : i + n_fft] * w for i in range(0, len(x) - n_fft + 1, hop)]
    ref = np.abs(np.fft.rfft(np.array(frames, dtype=np.float64), axis=1)).T
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-3 * max(1.0, ref.max()))


@settings(max_examples=25, deadline=None)
@given(signals, st.sampled_from([512, 2048, 4096]))
def test_log_fft_magnitude_crops_or_pads(x, length):
    got = log_fft_magnitude(torch.from_numpy(x)[None], length)[0].numpy()
    padded = np.zeros(length)
    m = min(length, len(x))
    padded[:m] = x[:m]
    ref = np.log1p(np.abs(np.fft.rfft(padded)))
    np.testing.assert_allclose(got, ref, atol=2e-3 * max(1.0, ref.max()))


@given(st.integers(8, 80), st.sampled_from([8000, 16000, 22050]))
def test_mel_filterbank_rows_are_normalized_triangles(n_mels, sr):
    fb = mel_filterbank(sr, 1024, n_mels)
    assert fb.shape == (n_mels, 513)
    assert (fb >= 0).all()
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, rtol=1e-5)
    centres = (fb * np.arange(513)).sum(axis=1)
    assert (np.diff(centres) > 0).all()  # bands ascend in frequency


def test_mel_filterbank_rejects_bad_band():
    with pytest.raises(InputError):
        mel_filterbank(16000, 1024, 64, fmin=9000.0)


@given(
    arrays(np.float32, st.integers(1, 50), elements=st.floats(-1, 1, width=32)),
    st.integers(1, 120),
    st.integers(0, 200),
)
def test_fit_length_crops_or_tiles(x, n, offset):
    y = fit_length(x, n, offset)
    assert y.shape == (n,)
    tiled = np.tile(x, -(-n // len(x)) + 1)
    start = min(offset, max(0, max(len(x), len(np.tile(x, -(-n // len(x))))) - n))
    np.testing.assert_array_equal(y, tiled[start : start + n])
