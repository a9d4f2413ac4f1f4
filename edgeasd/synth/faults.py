"""Fault signatures shared by rotating machines (fans, pumps, gearboxes, rigs, compressors).

These are the textbook vibration signatures of machinery diagnostics, radiated by the
housing as sound:

* **imbalance** -- a mass eccentricity ``e`` on a rotor turning at ``fr`` makes a
  rotating force ``m e (2 pi fr)^2``: a strong once-per-revolution (1x) component, and,
  because the whole machine sways at 1x, an amplitude modulation of every other sound
  at ``fr`` (sidebands at ``± fr`` around blade-pass and mesh tones).
* **misalignment** -- an angular or parallel offset between coupled shafts bends the
  coupling twice per revolution: dominant 2x with 1x and 3x, and 2x modulation.
* **looseness** -- a loose foot or bearing cap lets the part lift and hit its seat once
  per revolution. The clipped motion is rich in harmonics (1x ... 10x+) and
  half-orders (0.5x, 1.5x, ...) and every impact rings the housing's resonances.
* **bearing defects** -- a spall on a race is struck by each rolling element, giving
  short impacts at the defect frequency that ring the housing's resonances at a few
  kHz (the "envelope" signature). With ``Nb`` balls, ball/pitch diameter ratio
  ``d/D`` and contact angle ``phi``: outer race ``BPFO = Nb/2 fr (1 - d/D cos phi)``,
  inner race ``BPFI = Nb/2 fr (1 + d/D cos phi)``, ball spin
  ``BSF = D/(2d) fr (1 - (d/D cos phi)^2)``, cage ``FTF = fr/2 (1 - d/D cos phi)``.
  An inner-race spall turns with the shaft through the load zone, so its impacts are
  amplitude-modulated at ``fr``; a ball defect is modulated at the cage rate ``FTF``.
  Rolling elements slip by 1--2 %, so the impacts are not exactly periodic.
"""

from __future__ import annotations

import numpy as np

from edgeasd.synth.dsp import (
    TWO_PI,
    Rotation,
    colored_noise,
    cosine,
    filter_spectrum,
    highpass,
    impulses,
    resonances,
    slipped_crossings,
    tones,
    unit,
)
from edgeasd.synth.spec import Clip, with_fault

#: Bearing anomaly kinds -> the defect they model.
BEARING_KINDS = ("bearing", "outer_race", "inner_race", "ball")


def housing_modes(clip: Clip, lo: float = 1500.0, hi: float = 6000.0) -> np.ndarray:
    """Complex response of the machine housing's structural resonances, shape (n//2+1,).

    Three to five modes between ``lo`` and ``hi`` Hz (below Nyquist) with Q 15--40,
    constants of the physical unit (computed once per unit and clip length).
    """

    def make() -> np.ndarray:
        rng = clip.unit("housing")
        k = int(rng.integers(3, 6))
        top = min(hi, 0.45 * clip.sr)
        centers = np.exp(rng.uniform(np.log(lo), np.log(top), k))
        q, gain = rng.uniform(15, 40, k), rng.uniform(0.4, 1.0, k)
        return resonances(clip.f, centers, q, gain)

    return clip.unit_memo(("housing", lo, hi), make)


def bearing_orders(clip: Clip) -> dict[str, float]:
    """Defect frequencies of the unit's bearing as multiples of the shaft rate.

    The geometry (7--12 balls, ball/pitch diameter ratio 0.15--0.3, contact angle
    0--15 degrees) is a constant of the machine unit.

    Returns
    -------
    dict
        ``outer_race`` (BPFO), ``inner_race`` (BPFI), ``ball`` (BSF) and ``cage`` (FTF)
        orders.
    """
    geo = clip.unit("bearing-geometry")
    n_balls = int(geo.integers(7, 13))
    d_over_pitch = geo.uniform(0.15, 0.3)
    r = d_over_pitch * np.cos(np.deg2rad(geo.uniform(0, 15)))
    return {
        "outer_race": n_balls / 2 * (1 - r),
        "inner_race": n_balls / 2 * (1 + r),
        "ball": (1 - r**2) / (2 * d_over_pitch),
        "cage": 0.5 * (1 - r),
    }


def bearing_defect(clip: Clip, rot: Rotation, kind: str) -> np.ndarray:
    """Impacts of a bearing spall ringing the housing, unit RMS, shape (n,).

    ``kind`` is ``outer_race``, ``inner_race`` or ``ball`` (``bearing`` = outer race,
    the most common defect).
    """
    orders = bearing_orders(clip)
    rng = clip.stream("bearing-defect")
    fr = rot.freq
    if kind == "inner_race":
        order = orders["inner_race"]
        mod = 0.5 * (1 + cosine(rot.cycles, 1.0, rng.uniform(0, TWO_PI))) ** 1.5
    elif kind == "ball":
        order = 2 * orders["ball"]  # the spall strikes both races once per spin
        cage = orders["cage"] * rot.cycles
        mod = 0.3 + 0.7 * (0.5 + 0.5 * cosine(cage, 1.0, rng.uniform(0, TWO_PI)))
    else:
        order = orders["outer_race"]
        mod = np.ones(clip.n)
    cycles = order * rot.cycles + rng.random()
    pos = slipped_crossings(cycles, rng, 0.015, clip.sr, float(np.mean(fr)) * order)
    pos = np.clip(pos, 0, clip.n - 1)
    amps = mod[pos] * (1 + 0.25 * rng.standard_normal(pos.shape))
    hits = impulses(clip.n, pos, amps)
    ring = filter_spectrum(hits, housing_modes(clip, 2000.0, 7000.0))
    return unit(ring)


def rotor_fault(
    clip: Clip, healthy: np.ndarray, rot: Rotation, kind: str | None = None
) -> np.ndarray:
    """Apply whichever shaft or bearing fault the clip carries to ``healthy`` (shape (n,)).

    Handles ``imbalance``, ``misalignment``, ``looseness`` and the bearing kinds; any
    other anomaly (or none) returns ``healthy`` unchanged. ``kind`` maps a machine's
    own anomaly name (e.g. a bent shaft) onto one of these signatures.
    """
    sev = clip.severity
    if clip.anomaly is None or sev <= 0:
        return healthy
    kind = kind or clip.anomaly
    rng = clip.stream("rotor-fault")
    if kind in ("imbalance", "misalignment"):
        order = 1.0 if kind == "imbalance" else 2.0
        phase = rng.uniform(0, TWO_PI)
        force = cosine(rot.cycles, order, phase)
        sway = 1 + min(0.6, 0.3 * sev) * force
        if kind == "imbalance":
            amps = np.array([1.0, 0.15, 0.05, 0.0])
        else:
            amps = np.array([0.5, 1.0, 0.45, 0.2])
        low = tones(rot.cycles, np.arange(1.0, 5.0), amps, rng.uniform(0, TWO_PI, 4))
        # the housing and guards, shaken once (twice) per revolution, radiate in bursts
        shaken = colored_noise(clip.n, rng, housing_modes(clip, 400.0, 3000.0))
        shaken *= np.square(1 + force)
        return with_fault(healthy * sway, unit(low) + unit(shaken), sev)
    if kind == "looseness":
        orders = np.concatenate([np.arange(1, 13), np.arange(0.5, 12, 1.0)])
        amps = np.where(orders % 1 == 0, 1.0, 0.5) / np.sqrt(orders)
        harm = tones(rot.cycles, orders, amps, rng.uniform(0, TWO_PI, orders.size))
        rev = slipped_crossings(rot.cycles, rng, 0.02, clip.sr, float(np.mean(rot.freq)))
        lift = rng.gamma(2.0, 0.5, rev.size)  # random lift height, then a smaller bounce
        bounce = rev + (rng.uniform(0.01, 0.03, rev.size) * clip.sr).astype(np.int64)
        knocks = impulses(clip.n, np.concatenate([rev, bounce]), np.concatenate([lift, 0.5 * lift]))
        rattle = filter_spectrum(knocks, housing_modes(clip, 800.0, 4000.0))
        return with_fault(healthy, unit(harm) + 1.5 * unit(rattle), sev)
    if kind in BEARING_KINDS:
        return with_fault(healthy, bearing_defect(clip, rot, kind), sev)
    return healthy


def bearing_hum(clip: Clip, rot: Rotation) -> np.ndarray:
    """A healthy bearing's rolling noise: broadband roughness through the housing, unit RMS.

    Surface roughness of races and balls gives a steady broadband excitation whose
    level follows the speed; it reaches the microphone through the housing modes.
    """
    rng = clip.stream("bearing-hum")
    noise = colored_noise(clip.n, rng, housing_modes(clip) * highpass(clip.f, 500.0))
    speed = rot.freq / np.mean(rot.freq)
    return unit(noise * speed)
