"""Within-condition variation between recordings: warm-up, wander, background, re-seating.

Two recordings of one machine in one operating condition are not two draws of the same
random process: they are taken at different times of a day. Rendered with a
:class:`Recording` (``render(..., recording=Recording(time_s, session, session_start_s))``),
a clip gets the state of four slow processes of its machine unit and domain at that time:

* **warm-up** -- after a start (``session_start_s``) the machine runs about 1.5 % slow and
  its friction noise above ~2 kHz is up to 3 dB louder (cold lubricant, cold clearances);
  both decay with a time constant of :data:`WARMUP_TAU_S` (10 min).
* **wander of speed and load** -- every numeric operating attribute (speed, load, flow,
  pressure, ...) is multiplied by ``1 + OPERATING_WANDER * w(t)``: ``w`` a smooth process of
  unit standard deviation with periods of 20 min to 4 h (line voltage, supply pressure,
  product load), fixed per unit and domain.
* **changing background** -- the machine-to-background ratio wanders by
  ``BACKGROUND_WANDER_DB`` (std) on the same time scales, the background's spectral slope by
  1 dB/octave, impacts come at a varying rate, and each distant machine of the hall is on or
  off in half-hour blocks (at least one stays on).
* **microphone re-seating** -- each ``session`` re-mounts the microphone: a gain change
  (``SEATING_GAIN_DB`` std) and a smooth EQ change of a few bumps of ``SEATING_EQ_DB`` std
  over log frequency (a slightly different spot and angle on the housing).

The magnitudes are plausible for a fixed-mount sensor on an industrial machine, not fitted to
any data set; ``benchmarks/bench_operating_point.py`` uses them to test whether a threshold
calibrated on earlier recordings holds on later ones. Everything is deterministic: the slow
processes are seeded by machine type, section and domain (:meth:`Clip.unit`), the seating by
session, so a recording's state depends only on its time and session.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgeasd.synth.background import Environment
from edgeasd.synth.dsp import highpass
from edgeasd.synth.spec import Clip

#: Relative std of the slow wander of numeric operating attributes (speed, load, ...).
OPERATING_WANDER = 0.02
#: Speed deficit just after a start, relative (decays with WARMUP_TAU_S).
WARMUP_SLOW = 0.015
#: Extra friction noise above ~2 kHz just after a start, dB (decays with WARMUP_TAU_S).
WARMUP_NOISE_DB = 3.0
#: Warm-up time constant, seconds.
WARMUP_TAU_S = 600.0
#: Std of the wander of the machine-to-background ratio, dB.
BACKGROUND_WANDER_DB = 2.0
#: Std of the gain change at each microphone re-seating, dB.
SEATING_GAIN_DB = 1.0
#: Std of each of the smooth EQ bumps of a re-seating, dB.
SEATING_EQ_DB = 0.5
#: Periods of the slow processes, seconds (20 min to 4 h).
_PERIODS = (1200.0, 3600.0, 14400.0)
#: Distant machines switch on/off in blocks of this many seconds.
_BLOCK_S = 1800.0


@dataclass(frozen=True)
class Recording:
    """When a clip was recorded, for within-condition variation.

    Attributes
    ----------
    time_s : float
        Start of the recording, seconds since the machine unit's first session began (>= 0).
    session : int
        Microphone seating (and machine start) count; each session re-mounts the microphone.
    session_start_s : float
        When this session's machine start was (<= ``time_s``): the warm-up clock.
    """

    time_s: float
    session: int = 0
    session_start_s: float = 0.0

    def __post_init__(self) -> None:
        from edgeasd.errors import InputError

        if not (np.isfinite(self.time_s) and np.isfinite(self.session_start_s)):
            raise InputError(f"recording times must be finite, got {self}")
        if not 0.0 <= self.session_start_s <= self.time_s:
            raise InputError(
                f"recording needs 0 <= session_start_s <= time_s, got {self}",
                help="session_start_s is when the session began, before the recording",
            )
        if int(self.session) != self.session or self.session < 0:
            raise InputError(f"session must be a non-negative integer, got {self.session!r}")


@dataclass(frozen=True)
class Drift:
    """The state of the slow processes at one recording (see the module docstring).

    Attributes
    ----------
    operating : float
        Relative change of every numeric operating attribute.
    warm : float
        1 just after a start, decaying to 0.
    snr_offset_db : float
        Added to the machine-to-background ratio.
    gain_db : float
        Microphone gain change of this session's seating.
    background_slope_db : float
        Added to the background's spectral slope (dB/octave).
    impact_scale : float
        Factor on the background's impact rate.
    tones_on : tuple of bool
        Which distant machines of the hall run (one flag per background tone).
    session, domain : int, str
        Seed the seating EQ (:func:`seating_response`).
    """

    operating: float
    warm: float
    snr_offset_db: float
    gain_db: float
    background_slope_db: float
    impact_scale: float
    tones_on: tuple[bool, ...]
    session: int
    domain: str


def _slow(clip: Clip, name: str, t: float) -> float:
    """A smooth unit-variance process of the unit at time ``t`` (sum of 3 sinusoids)."""
    rng = clip.unit(f"drift-{name}")
    periods = np.asarray(_PERIODS) * rng.uniform(0.7, 1.3, len(_PERIODS))
    phases = rng.uniform(0.0, 2 * np.pi, len(_PERIODS))
    return float(np.sqrt(2.0 / len(_PERIODS)) * np.sum(np.sin(2 * np.pi * t / periods + phases)))


def drift_at(clip: Clip, domain: str, recording: Recording, n_tones: int) -> Drift:
    """The slow-process state of ``clip``'s unit and ``domain`` at ``recording``."""
    t = float(recording.time_s)
    warm = float(np.exp(-(t - recording.session_start_s) / WARMUP_TAU_S))
    seat = clip.unit(f"seating-{domain}-{int(recording.session)}")
    block = clip.unit(f"tones-{domain}-{int(t // _BLOCK_S)}")
    on = block.random(n_tones) < 0.7
    if n_tones and not on.any():
        on[int(block.integers(n_tones))] = True
    return Drift(
        operating=OPERATING_WANDER * _slow(clip, f"operating-{domain}", t) - WARMUP_SLOW * warm,
        warm=warm,
        snr_offset_db=BACKGROUND_WANDER_DB * _slow(clip, f"snr-{domain}", t),
        gain_db=float(SEATING_GAIN_DB * seat.standard_normal()),
        background_slope_db=_slow(clip, f"slope-{domain}", t),
        impact_scale=float(np.exp(0.5 * _slow(clip, f"impacts-{domain}", t))),
        tones_on=tuple(bool(v) for v in on),
        session=int(recording.session),
        domain=domain,
    )


def background_environment(env: Environment, drift: Drift) -> Environment:
    """``env`` with this recording's background: slope, impact rate, distant machines on."""
    tones = tuple(f for f, on in zip(env.bg_tones_hz, drift.tones_on, strict=True) if on)
    return dataclasses.replace(
        env,
        bg_slope_db=env.bg_slope_db + drift.background_slope_db,
        impact_rate_hz=env.impact_rate_hz * drift.impact_scale,
        bg_tones_hz=tones,
    )


def warmup_response(clip: Clip, drift: Drift) -> np.ndarray:
    """Shelf lifting friction noise above ~2 kHz by ``WARMUP_NOISE_DB * warm``, shape (n//2+1,)."""
    shelf = np.abs(highpass(clip.f, 2000.0, 2))
    return 10 ** (WARMUP_NOISE_DB * drift.warm * shelf / 20)


def seating_response(clip: Clip, drift: Drift) -> np.ndarray:
    """Smooth EQ of this session's microphone seating (3 bumps), shape (n//2+1,)."""
    rng = clip.unit(f"seating-eq-{drift.domain}-{drift.session}")
    logf = np.log2(np.maximum(clip.f, 20.0))
    db = np.zeros_like(logf)
    for _ in range(3):
        center = rng.uniform(np.log2(200), np.log2(0.45 * clip.sr))
        width = rng.uniform(0.3, 1.0)
        db += SEATING_EQ_DB * rng.standard_normal() * np.exp(-0.5 * ((logf - center) / width) ** 2)
    return 10 ** (db / 20)


def timeline(
    sessions: int,
    per_session: int,
    spacing_s: float = 300.0,
    session_gap_s: float = 3 * 3600.0,
    first_s: float = 60.0,
) -> list[Recording]:
    """Recordings of a monitoring timeline, in time order.

    ``sessions`` sessions (machine start + microphone seating) ``session_gap_s`` apart, each
    with ``per_session`` recordings every ``spacing_s`` seconds, the first ``first_s`` after the
    start (so the first recordings of a session are in warm-up).
    """
    out = []
    for s in range(sessions):
        start = s * session_gap_s
        for i in range(per_session):
            out.append(Recording(start + first_s + i * spacing_s, s, start))
    return out
