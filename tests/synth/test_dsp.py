"""Property tests of the simulator's signal primitives against plain reference code."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.synth import dsp

SETTINGS = settings(max_examples=25, deadline=None)


def _cycles(rate: float, n: int, start: float) -> np.ndarray:
    return start + np.cumsum(np.full(n, rate / 16000.0))


@SETTINGS
@given(
    orders=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    fractional=st.booleans(),
    rate=st.floats(5.0, 200.0),
    start=st.floats(0.0, 1000.0),
    seed=st.integers(0, 2**16),
)
def test_tones_equals_a_float64_sum_of_cosines(orders, fractional, rate, start, seed):
    rng = np.random.default_rng(seed)
    orders = np.array(orders, dtype=float) + (0.37 if fractional else 0.0)
    amps, phases = rng.uniform(0, 1, orders.size), rng.uniform(-10, 10, orders.size)
    cycles = _cycles(rate, 4000, start)
    ref = sum(
        a * np.cos(2 * np.pi * o * cycles + p) for o, a, p in zip(orders, amps, phases, strict=True)
    )
    got = dsp.tones(cycles, orders, amps, phases)
    assert np.max(np.abs(got - ref)) <= 2e-3 * max(1.0, amps.sum())


@SETTINGS
@given(
    coeffs=st.lists(st.complex_numbers(max_magnitude=1.0), min_size=1, max_size=50),
    rate=st.floats(5.0, 100.0),
)
def test_harmonic_series_equals_its_fourier_sum(coeffs, rate):
    c = np.array(coeffs, dtype=complex)
    cycles = _cycles(rate, 1000, 0.25)
    m = np.arange(1, c.size + 1)
    ref = np.real(np.exp(2j * np.pi * np.outer(cycles, m)) @ c)
    assert np.max(np.abs(dsp.harmonic_series(cycles, c) - ref)) <= 2e-3 * max(1e-3, np.abs(c).sum())


@SETTINGS
@given(
    n=st.integers(1, 120),
    positions=st.lists(st.integers(-20, 140), max_size=10),
    kernel_len=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_events_equals_a_loop_of_circular_adds(n, positions, kernel_len, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal(kernel_len)
    amps = rng.standard_normal(len(positions))
    ref = np.zeros(n)
    for p, a in zip(positions, amps, strict=True):
        if 0 <= p < n:
            for k, v in enumerate(kernel[:n]):
                ref[(p + k) % n] += a * v
    got = dsp.events(n, np.array(positions, dtype=np.int64), amps, kernel)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, ref, atol=1e-9)


@SETTINGS
@given(n=st.integers(2, 500), seed=st.integers(0, 2**16))
def test_spectral_rms_is_parseval(n, seed):
    x = np.random.default_rng(seed).standard_normal(n)
    assert np.isclose(dsp.spectral_rms(np.fft.rfft(x), n), dsp.rms(x), rtol=1e-9)


@SETTINGS
@given(cycles=st.lists(st.floats(-5.0, 5.0), min_size=2, max_size=60))
def test_crossings_finds_every_integer_passed_upwards(cycles):
    c = np.sort(np.array(cycles))
    ref = [i for i in range(1, c.size) if np.floor(c[i]) > np.floor(c[i - 1])]
    assert dsp.crossings(c).tolist() == ref


@SETTINGS
@given(center=st.floats(50.0, 7000.0), q=st.floats(0.5, 50.0))
def test_resonance_is_a_unit_peak_band_pass(center, q):
    f = np.linspace(0, 8000, 1601)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = 1.0 / (1.0 + 1j * q * (f / center - center / f))
    ref[0] = 0.0
    h = dsp.resonance(f, center, q)
    np.testing.assert_allclose(h, ref, atol=1e-12)
    assert np.abs(dsp.resonance(np.array([center]), center, q))[0] == 1.0


@SETTINGS
@given(n=st.integers(16, 4000), seed=st.integers(0, 2**16), slope=st.floats(-9.0, 3.0))
def test_colored_noise_has_unit_rms_and_follows_its_spectral_shape(n, seed, slope):
    rng = np.random.default_rng(seed)
    f = dsp.freq_axis(n, 16000)
    x = dsp.colored_noise(n, rng, dsp.tilt(f, slope))
    assert np.isclose(dsp.rms(x), 1.0, rtol=1e-4)
    assert abs(np.mean(x)) < 1e-6  # the DC bin is zeroed by the tilt
