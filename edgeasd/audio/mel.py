"""Mel filterbank and log-mel spectrogram in numpy (no torch, no librosa).

:func:`mel_filterbank` is the filterbank of the shipped spectral model
(:mod:`edgeasd.train.spectral`, which re-exports it through :mod:`edgeasd.train.frontend`);
:func:`log_mel` computes a log-mel spectrogram with the same constants (Hann 1024, hop 512,
64 bands from 20 Hz), so that what ``edgeasd report`` shows is what that model sees.
"""

from __future__ import annotations

import numpy as np

from edgeasd.errors import InputError

#: STFT and band constants of the shipped spectral model (edgeasd/train/spectral.py).
N_FFT = 1024
HOP = 512
N_MELS = 64
FMIN = 20.0


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_edges(
    sample_rate: int, n_mels: int, fmin: float = FMIN, fmax: float | None = None
) -> np.ndarray:
    """Band edges in Hz: band ``i`` spans ``edges[i]`` to ``edges[i + 2]``, peaking at ``i + 1``.

    Returns
    -------
    numpy.ndarray, shape (n_mels + 2,)
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise InputError(f"need 0 <= fmin < fmax <= {sample_rate / 2}, got {fmin}, {fmax}")
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 20.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular HTK-mel filterbank, each filter normalized to unit area.

    Parameters
    ----------
    sample_rate, n_fft : int
        Define the STFT bin frequencies ``k * sample_rate / n_fft``.
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Band edges in Hz; ``fmax`` defaults to the Nyquist frequency.

    Returns
    -------
    numpy.ndarray, shape (n_mels, n_fft // 2 + 1), float32
    """
    edges = mel_edges(sample_rate, n_mels, fmin, fmax)
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lo) / (mid - lo)
    falling = (hi - freqs[None, :]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    # Narrow low bands can fall between bins: give each at least its nearest bin.
    empty = fb.sum(axis=1) == 0
    for i in np.flatnonzero(empty):
        fb[i, np.argmin(np.abs(freqs - mid[i, 0]))] = 1.0
    fb /= fb.sum(axis=1, keepdims=True)
    return fb.astype(np.float32)


def log_mel(
    samples: np.ndarray,
    sample_rate: int,
    n_fft: int = N_FFT,
    hop: int = HOP,
    n_mels: int = N_MELS,
    fmin: float = FMIN,
) -> np.ndarray:
    """Log-mel power spectrogram in dB (re full scale).

    Parameters
    ----------
    samples : numpy.ndarray, shape (n,)
        Mono audio in [-1, 1]; shorter than ``n_fft`` is zero-padded to one frame.
    sample_rate : int
    n_fft, hop, n_mels, fmin
        Hann window length, hop and bands (defaults: the shipped spectral model's).

    Returns
    -------
    numpy.ndarray, shape (n_mels, frames), float32
        ``10 log10`` of the band power, floored at -150 dB.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"samples must have shape (n,) with n > 0, got {x.shape}")
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2 / np.sum(window**2)
    mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin) @ power.T
    return (10.0 * np.log10(np.maximum(mel, 1e-15))).astype(np.float32)
