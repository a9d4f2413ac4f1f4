"""Helpers for the simulator tests: a plain spectro-temporal feature and its distance."""

from __future__ import annotations

import numpy as np
import pytest

SR = 16000


def band_features(x: np.ndarray, sr: int = SR, nfft: int = 1024, hop: int = 512) -> np.ndarray:
    """Level-normalized mean log band energies and their standard deviation over time.

    24 log-spaced bands from 200 Hz to Nyquist; the mean part sees spectral changes,
    the std part impulsive or intermittent ones (knocks, missed valve cycles).

    Returns
    -------
    ndarray, shape (48,)
    """
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), nfft)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(nfft))) ** 2
    f = np.fft.rfftfreq(nfft, 1 / sr)
    edges = np.geomspace(200, sr / 2, 25)
    band = np.searchsorted(edges, f) - 1
    energies = np.stack([power[:, band == b].sum(1) for b in range(24)], 1)
    db = 10 * np.log10(energies + 1e-12)
    mean = db.mean(0)
    return np.concatenate([mean - mean.mean(), db.std(0)])


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference (dB) of the band features of two clips."""
    return float(np.sqrt(np.mean(np.square(band_features(a) - band_features(b)))))


@pytest.fixture
def clip_distance():
    """:func:`distance`, for tests that compare clips."""
    return distance
