"""Feature front-end, data helpers and metadata: property tests against plain references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgeasd.errors import InputError
from edgeasd.train.data import fit_length

torch = pytest.importorskip("torch")

from edgeasd.train.frontend import (  # noqa: E402
    log_fft_magnitude,
    mel_filterbank,
    next_power_of_two,
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
