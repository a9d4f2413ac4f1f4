"""Feature front-ends shared by the embedding models, written as exportable torch code.

Every model edgeasd ships takes the raw waveform and computes its own features inside
the ONNX graph, so no feature code can drift between training and the agent. The
functions here use only operations that the dynamo ONNX exporter maps to fast
onnxruntime kernels: the STFT with a power-of-two frame, and a real FFT whose length
is a power of two (onnxruntime's DFT at 160,000 points was ~10x slower and less
accurate than at 131,072 or 262,144).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgeasd.errors import InputError


def next_power_of_two(n: int) -> int:
    """The smallest power of two that is ``>= n`` (``n >= 1``)."""
    if n < 1:
        raise InputError(f"length must be positive, got {n}")
    return 1 << (int(n) - 1).bit_length()


def stft_magnitude(x: torch.Tensor, n_fft: int = 1024, hop: int = 512) -> torch.Tensor:
    """Magnitude STFT with a periodic Hann window, frames fully inside the signal.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, samples)
        Waveform.
    n_fft, hop : int
        Frame length (a power of two) and hop in samples.

    Returns
    -------
    torch.Tensor, shape (batch, n_fft // 2 + 1, frames)
        ``|STFT|`` with ``frames = 1 + (samples - n_fft) // hop``.
    """
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x, n_fft=n_fft, hop_length=hop, window=window, center=False, return_complex=True
    )
    return spec.abs()


def log_fft_magnitude(x: torch.Tensor, length: int) -> torch.Tensor:
    """``log1p(|rFFT|)`` of the waveform cropped or zero-padded to ``length`` samples.

    The raw magnitudes span six orders of magnitude, which ruins int8 quantization of
    the layers that follow; ``log1p`` compresses them to a range int8 represents well.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, samples)
        Waveform.
    length : int
        FFT length; a power of two keeps onnxruntime's DFT fast and exact.

    Returns
    -------
    torch.Tensor, shape (batch, length // 2 + 1)
    """
    n = x.shape[-1]
    if n >= length:
        x = x[:, :length]
    else:
        x = F.pad(x, (0, length - n))
    return torch.log1p(torch.fft.rfft(x, n=length).abs())


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
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise InputError(f"need 0 <= fmin < fmax <= {sample_rate / 2}, got {fmin}, {fmax}")

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
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
