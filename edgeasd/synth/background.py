"""Acoustic environment: factory background noise, room, microphone and its position.

The machine's sound reaches the microphone through the room and is recorded together
with the factory around it:

* **room** -- the direct sound plus a diffuse reverberant tail: an exponentially
  decaying noise impulse response with reverberation time ``RT60`` (the sound field
  after many reflections), mixed at a direct-to-reverberant ratio that falls with the
  microphone distance (``20 log10(r_c / d)``, ``r_c`` the hall's critical distance);
  air and distance absorb high frequencies (``exp(-(f / f_air)^2 d)``).
* **background** -- other machines and activity in the hall: a broadband floor with a
  spectral slope (ventilation, distant machinery, -3 to -6 dB/octave), mains hum at
  twice the line frequency and its harmonics (transformers, motors: 100 Hz in 50 Hz
  countries, 120 Hz in 60 Hz ones), a few tones of distant machines, a slowly varying
  level, and sporadic impacts (parts dropped, hammering, pneumatic bursts).
* **microphone** -- a high-pass (wind/handling filter or the capsule's roll-off), a
  presence resonance and a low-pass (capsule and preamplifier).
* **position** -- a machine radiates differently in each direction; each named
  microphone position gets a fixed smooth spectral weighting (±6 dB).

The source and the target domain draw these from different distributions (the target
microphone is farther away, in a more reverberant hall with another background and
another microphone) -- the "background/microphone" domain shift of DCASE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from edgeasd.synth.dsp import (
    TWO_PI,
    events,
    highpass,
    lowpass,
    noise_spectrum,
    resonances,
    ringdown,
    smooth_noise,
    tilt,
    tones,
    unit,
)
from edgeasd.synth.spec import Clip


@dataclass(frozen=True)
class Environment:
    """Room, microphone and background of one domain of one machine unit (all fixed)."""

    distance_m: float
    rt60_s: float
    drr_db: float
    air_hz: float
    mic_highpass_hz: float
    mic_peak_hz: float
    mic_peak_gain: float
    mic_lowpass_hz: float
    bg_slope_db: float
    hum_hz: float
    hum_level: float
    bg_tones_hz: tuple[float, ...]
    impact_rate_hz: float


def environment(clip: Clip, domain: str) -> Environment:
    """The fixed environment of ``domain`` for the clip's machine unit."""
    rng = clip.unit(f"environment-{domain}")
    far = domain == "target"
    distance = rng.uniform(1.5, 3.0) if far else rng.uniform(0.3, 1.0)
    return Environment(
        distance_m=distance,
        rt60_s=rng.uniform(0.6, 1.2) if far else rng.uniform(0.2, 0.5),
        drr_db=20 * np.log10((rng.uniform(1.0, 2.0) if far else rng.uniform(1.5, 3.0)) / distance),
        air_hz=rng.uniform(6000, 9000) if far else rng.uniform(12000, 20000),
        mic_highpass_hz=rng.uniform(60, 150) if far else rng.uniform(15, 40),
        mic_peak_hz=rng.uniform(2000, 5000),
        mic_peak_gain=rng.uniform(0.3, 1.0) if far else rng.uniform(0.0, 0.3),
        mic_lowpass_hz=rng.uniform(5000, 7000) if far else rng.uniform(9000, 16000),
        bg_slope_db=rng.uniform(-7, -5) if far else rng.uniform(-5, -3),
        hum_hz=120.0 if (far and rng.random() < 0.7) else 100.0,
        hum_level=rng.uniform(0.2, 0.5),
        bg_tones_hz=tuple(rng.uniform(150, 3000, int(rng.integers(2, 5)))),
        impact_rate_hz=rng.uniform(0.2, 0.6) if far else rng.uniform(0.05, 0.25),
    )


def room_response(clip: Clip, env: Environment) -> np.ndarray:
    """Direct path + reverberant tail + air absorption, complex shape (n//2+1,).

    The tail is fixed for the unit and domain (same room, same microphone spot).
    """
    return clip.unit_memo(("room", env), lambda: _room_response(clip, env))


def _room_response(clip: Clip, env: Environment) -> np.ndarray:
    rng = clip.unit(f"room-{env.rt60_s:.6f}")
    length = min(clip.n, int(env.rt60_s * clip.sr))
    t = np.arange(length) / clip.sr
    tail = np.zeros(clip.n)
    tail[:length] = rng.standard_normal(length) * np.exp(-6.9 * t / env.rt60_s)
    tail[: max(1, int(0.003 * clip.sr))] = 0.0  # first reflections arrive after ~1 m of path
    energy = float(np.sum(np.square(tail)))  # zero only for clips shorter than 3 ms
    reverb = sfft.rfft(tail / np.sqrt(energy)) if energy > 0 else np.zeros(clip.f.shape)
    direct = 10 ** (env.drr_db / 20)
    air = np.exp(-np.square(clip.f / env.air_hz) * env.distance_m)
    return (direct + reverb) * air / np.sqrt(1 + direct**2)


def mic_response(clip: Clip, env: Environment) -> np.ndarray:
    """Microphone magnitude response, shape (n//2+1,)."""
    return clip.unit_memo(("mic", env), lambda: _mic_response(clip, env))


def _mic_response(clip: Clip, env: Environment) -> np.ndarray:
    f = clip.f
    peak = 1 + env.mic_peak_gain * np.abs(resonances(f, env.mic_peak_hz, 2.0))
    return highpass(f, env.mic_highpass_hz, 2) * lowpass(f, env.mic_lowpass_hz, 3) * peak


def position_response(clip: Clip, position: str) -> np.ndarray:
    """Smooth directivity weighting (±6 dB bumps over log frequency) of a named position."""
    return clip.unit_memo(("position", position), lambda: _position_response(clip, position))


def _position_response(clip: Clip, position: str) -> np.ndarray:
    rng = clip.unit(f"position-{position}")
    logf = np.log2(np.maximum(clip.f, 20.0))
    db = np.zeros_like(logf)
    for _ in range(4):
        center = rng.uniform(np.log2(100), np.log2(0.45 * clip.sr))
        db += rng.uniform(-6, 6) * np.exp(-0.5 * np.square((logf - center) / rng.uniform(0.3, 1)))
    return 10 ** (db / 20)


def background(clip: Clip, env: Environment) -> np.ndarray:
    """Factory background noise as an ``rfft`` spectrum, shape (n//2+1,).

    The steady part (floor, hum, distant machines) has unit RMS; sporadic impacts come
    on top of it.

    Returned in the frequency domain because the renderer mixes there: the stationary
    floor is generated directly as a spectrum, only the hum, distant tones (with a
    slowly varying level) and impacts are built in time.
    """
    rng = clip.stream("background")
    n, sr = clip.n, clip.sr
    shape = clip.unit_memo(
        ("floor", env), lambda: tilt(clip.f, env.bg_slope_db, 200.0) * highpass(clip.f, 20.0)
    )
    floor = noise_spectrum(n, rng, shape)
    orders = np.arange(1.0, 5.0)
    hum_phases = clip.unit("hum").uniform(0, TWO_PI, 4)
    hum = tones(env.hum_hz * clip.mains_time(), orders, np.array([1.0, 0.5, 0.3, 0.15]), hum_phases)
    # distant induction machines, all drifting with the load on the mains
    clock = np.cumsum(1 + 0.002 * smooth_noise(n, sr, rng, 0.2)) / sr
    freqs = np.array(env.bg_tones_hz)
    amps = 0.5 + 0.5 * rng.random(freqs.size)
    distant = tones(clock, freqs, amps, rng.uniform(0, TWO_PI, freqs.size))
    count = rng.poisson(env.impact_rate_hz * clip.seconds)
    starts, amps = rng.integers(0, n, count), rng.gamma(2.0, 0.5, count)
    kernel = ringdown(
        sr,
        rng.uniform(300, 3000, 4),
        rng.uniform(0.01, 0.08, 4),
        rng.uniform(0.3, 1.0, 4),
        0.3,
        rng,
        noise=0.5,
    )
    knocks = events(n, starts, amps, kernel)
    level = np.exp(0.15 * smooth_noise(n, sr, rng, 0.3))
    steady = (env.hum_level * unit(hum) + 0.25 * unit(distant)) * level
    scale = np.sqrt(1.0 + np.mean(np.square(steady)))  # floor has unit RMS, independent
    return floor / scale + sfft.rfft(steady / scale + 2.0 * knocks)
