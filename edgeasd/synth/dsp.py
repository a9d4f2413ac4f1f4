"""Vectorized signal building blocks shared by the machine-sound models.

Everything works on float64 arrays of ``n`` samples at ``sr`` Hz and is written as a
handful of numpy operations per component (no per-sample Python loops), so a 10 s clip
at 16 kHz renders in tens of milliseconds. Filtering is done in the frequency domain on
the whole clip (circular convolution): the simulated machines run in steady state, so a
circular filter gives a clip without the build-up transient a linear filter would have
at its start.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.fft as sfft

TWO_PI = 2.0 * np.pi


class Rotation(NamedTuple):
    """A shaft turning at a slowly wandering speed.

    Attributes
    ----------
    freq : ndarray, shape (n,)
        Instantaneous rotation frequency in Hz.
    cycles : ndarray, shape (n,)
        Accumulated shaft angle in revolutions (starts at a random fraction).
    """

    freq: np.ndarray
    cycles: np.ndarray


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (shape (n,)); 0.0 for an all-zero signal."""
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` (shape (n,)) scaled to unit RMS (returned unchanged when silent)."""
    r = rms(x)
    return x / r if r > 0 else x


def smooth_noise(n: int, sr: int, rng: np.random.Generator, rate_hz: float) -> np.ndarray:
    """A slowly varying zero-mean random process of roughly unit variance.

    Gaussian values at knots spaced ``1 / rate_hz`` seconds apart, joined by cosine
    interpolation (smooth first derivative, so frequency modulation by it is click-free),
    evaluated on a grid of ``32 * rate_hz`` points per second and linearly resampled.

    Returns
    -------
    ndarray, shape (n,)
    """
    n_knots = int(np.ceil(n / sr * rate_hz)) + 2
    knots = rng.standard_normal(n_knots)
    n_grid = int(np.ceil(n / sr * rate_hz * 32)) + 2
    pos = np.arange(n_grid) / 32 + rng.random()
    i = np.minimum(pos.astype(np.int64), n_knots - 2)
    w = 0.5 - 0.5 * np.cos(np.pi * (pos - i))
    grid = knots[i] * (1.0 - w) + knots[i + 1] * w
    return np.interp(np.arange(n) * (rate_hz * 32 / sr), np.arange(n_grid), grid)


def rotation(
    n: int,
    sr: int,
    f0: float,
    rng: np.random.Generator,
    jitter: float = 0.004,
    wander_hz: float = 0.4,
) -> Rotation:
    """Shaft speed around ``f0`` Hz with a per-clip offset and a slow random wander.

    Real drives never hold an exact speed: mains frequency, load and slip move an
    induction motor's speed by a fraction of a percent. ``jitter`` is the relative
    standard deviation of both the per-clip offset and the wander.
    """
    offset = 1.0 + jitter * rng.standard_normal()
    freq = f0 * offset * (1.0 + jitter * smooth_noise(n, sr, rng, wander_hz))
    cycles = rng.random() + np.cumsum(freq) / sr
    return Rotation(freq, cycles)


def tones(
    cycles: np.ndarray, orders: np.ndarray, amps: np.ndarray, phases: np.ndarray
) -> np.ndarray:
    """Sum of cosines at multiples of a rotating angle.

    Three or more whole orders (up to 64) are read from one wavetable
    (:func:`harmonic_series`). Otherwise whole orders use the fractional part of
    ``cycles`` (exact for whole multiples), so the cosines can be evaluated in float32
    (phase error < 1e-4 rad) at a fraction of the float64 cost; other orders reduce
    ``order * cycles`` modulo 1 first.

    Parameters
    ----------
    cycles : ndarray, shape (n,)
        Accumulated angle in revolutions.
    orders, amps, phases : ndarray, shape (m,)
        Order (multiple of the rotation rate, may be fractional), amplitude and phase
        (radians) of each component; components with zero amplitude are skipped.

    Returns
    -------
    ndarray, shape (n,)
    """
    orders = np.asarray(orders, dtype=float)
    if (
        orders.size >= 3
        and np.all(orders == np.round(orders))
        and 1 <= orders.min() <= orders.max() <= 64
    ):
        coeffs = np.zeros(int(orders.max()), dtype=complex)
        np.add.at(
            coeffs, orders.astype(np.int64) - 1, np.asarray(amps) * np.exp(1j * np.asarray(phases))
        )
        return harmonic_series(cycles, coeffs)
    frac = cycles - np.floor(cycles)
    theta = (TWO_PI * frac).astype(np.float32)
    out = np.zeros(cycles.shape, dtype=np.float32)
    for order, amp, phase in zip(orders, amps, phases, strict=True):
        if amp == 0.0:
            continue
        if float(order).is_integer():
            arg = np.float32(order) * theta
        else:
            arg = (TWO_PI * ((order * cycles) % 1.0)).astype(np.float32)
        out += np.float32(amp) * np.cos(arg + np.float32(phase % TWO_PI))
    return out.astype(np.float64)


def cosine(cycles: np.ndarray, order: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """``cos(2 pi order cycles + phase)`` (one :func:`tones` component), shape like ``cycles``."""
    return tones(cycles, np.array([order]), np.array([1.0]), np.array([phase]))


def harmonic_series(cycles: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sum_m Re(c_m exp(2 pi j m cycles))`` for orders ``m = 1 .. M``.

    A periodic function of the shaft angle given by its Fourier coefficients (a blade
    or tooth pattern). One revolution is synthesized as a wavetable by an inverse FFT
    (64 or more points per period of the highest order, so linear interpolation errs by
    at most ``pi^2 / (2 64^2)`` = 1.2e-3 of a component's amplitude, -58 dB) and read
    at the fractional angle.

    Parameters
    ----------
    cycles : ndarray, shape (n,)
    coeffs : ndarray of complex, shape (M,)

    Returns
    -------
    ndarray, shape (n,)
    """
    size = max(1024, 1 << int(np.ceil(np.log2(64 * (len(coeffs) + 1)))))
    spec = np.zeros(size // 2 + 1, dtype=complex)
    spec[1 : len(coeffs) + 1] = coeffs * (size / 2)
    table = sfft.irfft(spec, n=size)
    table = np.append(table, table[0])
    return np.interp((cycles - np.floor(cycles)) * size, np.arange(size + 1), table)


def freq_axis(n: int, sr: int) -> np.ndarray:
    """Frequencies (Hz) of the ``rfft`` bins of an ``n``-sample signal, shape (n // 2 + 1,)."""
    return sfft.rfftfreq(n, 1.0 / sr)


def resonance(f: np.ndarray, center: float, q: float) -> np.ndarray:
    """Complex response of a second-order band-pass resonator (unit gain at ``center``).

    ``H(f) = 1 / (1 + j Q (f / fc - fc / f))``; its impulse response rings at ``fc`` and
    decays with time constant ``Q / (pi fc)``. Shape follows ``f``; ``H(0) = 0``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        x = q * (f / center - center / np.maximum(f, 1e-9))
    den = 1.0 + np.square(x)
    h = (1.0 / den) + 1j * (-x / den)  # 1 / (1 + jx) without a complex division
    h[f <= 0] = 0.0
    return h


def resonances(
    f: np.ndarray, centers: np.ndarray, qs: np.ndarray | float, gains: np.ndarray | float = 1.0
) -> np.ndarray:
    """Sum of :func:`resonance` responses (a structure with several modes), shape like ``f``."""
    centers = np.atleast_1d(np.asarray(centers, dtype=float))
    qs = np.broadcast_to(np.asarray(qs, dtype=float), centers.shape)
    gains = np.broadcast_to(np.asarray(gains, dtype=float), centers.shape)
    h = np.zeros(f.shape, dtype=complex)
    for c, q, g in zip(centers, qs, gains, strict=True):
        h += g * resonance(f, c, q)
    return h


def filter_spectrum(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Filter ``x`` (shape (n,)) by the frequency response ``h`` (shape (n // 2 + 1,))."""
    return sfft.irfft(sfft.rfft(x) * h, n=x.shape[0])


def spectral_rms(spec: np.ndarray, n: int) -> float:
    """RMS of the ``n``-sample real signal whose ``rfft`` is ``spec`` (Parseval)."""
    p = np.square(np.abs(spec))
    total = 2.0 * p.sum() - p[0] - (p[-1] if n % 2 == 0 else 0.0)
    return float(np.sqrt(max(total, 0.0))) / n


def noise_spectrum(n: int, rng: np.random.Generator, h: np.ndarray) -> np.ndarray:
    """The ``rfft`` of Gaussian noise with magnitude spectrum ``|h|``, scaled to unit RMS.

    Returns
    -------
    ndarray of complex, shape (n // 2 + 1,)
    """
    mag = np.abs(h).astype(np.float32)
    spec = rng.standard_normal(2 * h.shape[0], dtype=np.float32).view(np.complex64) * mag
    spec[0] = spec[0].real
    if n % 2 == 0:
        spec[-1] = spec[-1].real
    r = spectral_rms(spec, n)
    return spec / r if r > 0 else spec


def colored_noise(n: int, rng: np.random.Generator, h: np.ndarray) -> np.ndarray:
    """Gaussian noise with the magnitude spectrum ``|h|`` (shape (n // 2 + 1,)), unit RMS."""
    return sfft.irfft(noise_spectrum(n, rng, h), n=n)


def tilt(f: np.ndarray, db_per_octave: float, ref_hz: float = 1000.0) -> np.ndarray:
    """Magnitude ``(f / ref) ** (slope / 6.02)``: a spectral slope in dB per octave (DC zeroed)."""
    with np.errstate(divide="ignore"):
        g = np.power(np.maximum(f, 1e-9) / ref_hz, db_per_octave / 6.0206)
    g[0] = 0.0
    return g


def highpass(f: np.ndarray, cutoff: float, order: int = 2) -> np.ndarray:
    """Butterworth-like high-pass magnitude, shape like ``f``."""
    return 1.0 / np.sqrt(1.0 + np.power(cutoff / np.maximum(f, 1e-9), 2 * order))


def lowpass(f: np.ndarray, cutoff: float, order: int = 2) -> np.ndarray:
    """Butterworth-like low-pass magnitude, shape like ``f``."""
    return 1.0 / np.sqrt(1.0 + np.power(f / cutoff, 2 * order))


def crossings(cycles: np.ndarray) -> np.ndarray:
    """Sample indices where an accumulated phase (revolutions) passes an integer, shape (k,)."""
    whole = np.floor(cycles)
    return np.nonzero(np.diff(whole) > 0)[0] + 1


def impulses(n: int, positions: np.ndarray, amps: np.ndarray | float = 1.0) -> np.ndarray:
    """A signal of ``n`` zeros with ``amps`` added at integer ``positions`` (clipped to range)."""
    positions = np.asarray(positions, dtype=np.int64)
    amps = np.broadcast_to(np.asarray(amps, dtype=float), positions.shape)
    keep = (positions >= 0) & (positions < n)
    out = np.bincount(positions[keep], weights=amps[keep], minlength=n)
    return out.astype(np.float64, copy=False)  # bincount of nothing is int64


def slipped_crossings(
    cycles: np.ndarray, rng: np.random.Generator, slip: float, sr: int, rate_hz: float
) -> np.ndarray:
    """Event times of a periodic process with random slip, shape (k,) sample indices.

    Rolling elements skid, so bearing-defect impacts are not exactly periodic: each
    event is moved by a Gaussian fraction ``slip`` of the nominal period ``1 / rate_hz``.
    """
    pos = crossings(cycles)
    jitter = rng.standard_normal(pos.shape) * slip * sr / max(rate_hz, 1e-6)
    return np.round(pos + jitter).astype(np.int64)


def ringdown(
    sr: int,
    freqs: np.ndarray,
    decays: np.ndarray,
    amps: np.ndarray,
    seconds: float,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> np.ndarray:
    """An impact's sound: damped sinusoids (structural modes) plus an optional noise burst.

    Parameters
    ----------
    freqs, decays, amps : ndarray, shape (m,)
        Mode frequency (Hz), exponential decay time constant (s) and amplitude.
    seconds : float
        Length of the returned kernel.
    noise : float
        RMS of a decaying broadband noise part (the contact crack), needs ``rng``.

    Returns
    -------
    ndarray, shape (round(seconds * sr),)
    """
    t = np.arange(max(1, round(seconds * sr))) / sr
    out = np.zeros_like(t)
    phases = rng.random(len(freqs)) * TWO_PI if rng is not None else np.zeros(len(freqs))
    for f, d, a, p in zip(freqs, decays, amps, phases, strict=True):
        out += a * np.exp(-t / d) * np.sin(TWO_PI * f * t + p)
    if noise and rng is not None:
        out += noise * rng.standard_normal(t.shape) * np.exp(-t / (0.25 * seconds))
    return out


def events(
    n: int, positions: np.ndarray, amps: np.ndarray | float, kernel: np.ndarray
) -> np.ndarray:
    """Copies of ``kernel`` (shape (k,)) scaled by ``amps`` at ``positions``, shape (n,).

    Events outside ``[0, n)`` are dropped; the convolution is circular (an event near
    the end of the clip rings on at its start, as in a steady-state recording). Sparse
    events are scattered directly, dense trains go through one FFT convolution.
    """
    positions = np.asarray(positions, dtype=np.int64)
    amps = np.broadcast_to(np.asarray(amps, dtype=float), positions.shape)
    keep = (positions >= 0) & (positions < n)
    positions, amps, kernel = positions[keep], amps[keep], kernel[:n]
    if positions.size * kernel.size <= 4_000_000:
        idx = (positions[:, None] + np.arange(kernel.size)) % n
        weights = amps[:, None] * kernel
        out = np.bincount(idx.ravel(), weights=weights.ravel(), minlength=n)
        return out.astype(np.float64, copy=False)
    train = np.bincount(positions % n, weights=amps, minlength=n)
    return sfft.irfft(sfft.rfft(train) * sfft.rfft(kernel, n), n=n)
