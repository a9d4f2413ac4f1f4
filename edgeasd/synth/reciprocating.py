"""Sound models of machines that work in cycles: a solenoid valve and a linear slider.

Their sound is a sequence of discrete events (valve plates and plungers slamming,
a carriage starting and stopping) on top of flow or friction noise whose level
follows the machine's state. Timings carry controller jitter and each clip starts at
a random point of the cycle.
"""

from __future__ import annotations

import numpy as np

from edgeasd.errors import InputError
from edgeasd.synth.dsp import (
    TWO_PI,
    colored_noise,
    cosine,
    events,
    highpass,
    lowpass,
    resonances,
    ringdown,
    rms,
    smooth_noise,
    tilt,
    tones,
    unit,
)
from edgeasd.synth.faults import housing_modes
from edgeasd.synth.spec import Attribute, Clip, MachineSpec, Sound, with_fault

#: Valve operating patterns: one cycle as (open seconds, closed seconds) steps.
VALVE_PATTERNS: dict[str, tuple[tuple[float, float], ...]] = {
    "00": ((0.5, 0.5),),
    "01": ((0.15, 0.15), (0.15, 0.15), (0.15, 1.2)),
    "02": ((1.5, 0.5),),
    "03": ((0.3, 0.2), (0.3, 0.2), (1.0, 0.8)),
}


def part_impact(clip: Clip, name: str, lo: float, hi: float, seconds: float = 0.04) -> np.ndarray:
    """The ring of one part of the unit struck once (fixed modes, peak about 1), shape (k,)."""
    rng = clip.unit(name)
    hi = min(hi, 0.45 * clip.sr)
    freqs = np.exp(rng.uniform(np.log(lo), np.log(hi), 3))
    kernel = ringdown(
        clip.sr, freqs, rng.uniform(0.002, 0.008, 3), rng.uniform(0.4, 1.0, 3), seconds, rng, 0.3
    )
    return kernel / np.max(np.abs(kernel))


def _gate(t: np.ndarray, on: np.ndarray, off: np.ndarray, rise: float, fall: float) -> np.ndarray:
    """Open fraction (0..1) of a valve with opening times ``on`` and closing times ``off``.

    Parameters
    ----------
    t : ndarray, shape (n,)
    on, off : ndarray, shape (k,)
        Sorted, alternating (``on[i] < off[i] < on[i + 1]``).
    """
    if on.size == 0:
        return np.zeros_like(t)
    times = np.ravel(np.column_stack([on, off]))
    state = np.tile([1.0, 0.0], on.size)
    idx = np.searchsorted(times, t, side="right") - 1
    since = t - times[np.maximum(idx, 0)]
    opened = np.where(idx >= 0, state[np.maximum(idx, 0)], 0.0)
    return np.where(opened > 0, np.minimum(1.0, since / rise), np.maximum(0.0, 1.0 - since / fall))


def valve(clip: Clip) -> Sound:
    """Solenoid valve on a pressurized water line, switched in a fixed pattern.

    Energizing the coil pulls the plunger, which strikes its stop (a sharp click ringing
    the valve body's modes) and lets the fluid through: turbulent jet hiss whose level
    grows with the supply pressure, shaped by the valve cavity. De-energized, the spring
    slams the plunger onto its seat (a second, different click) and the suddenly
    stopped fluid column rings the pipe (water hammer: a decaying low-frequency
    oscillation at the pipe's acoustic mode). An AC coil buzzes at 100 Hz while
    energized, quietly while the plunger is seated. **Timing fault**: a worn spring or
    contaminated armature makes the valve open and close late and occasionally miss a
    cycle. **Leak**: the closed seat lets a jet through (hiss and whistle between
    cycles). **Sticking**: the plunger sticks and chatters (several small impacts),
    only partly opens, and, not seated, buzzes loudly in the coil's 100 Hz field.
    """
    pattern = clip.attrs["pat"]
    if pattern not in VALVE_PATTERNS:
        raise InputError(
            f"unknown valve pattern {pattern!r}", help="use one of " + ", ".join(VALVE_PATTERNS)
        )
    rng = clip.stream("valve")
    pres = clip.num("pres")
    n, sr = clip.n, clip.sr
    steps = np.array(VALVE_PATTERNS[pattern])
    period = float(steps.sum())
    count = int(np.ceil(clip.seconds / period)) + 2
    starts = np.cumsum(np.concatenate([[0.0], np.tile(steps.sum(axis=1), count)]))[:-1]
    on = starts - rng.uniform(0, period) - period
    off = on + np.tile(steps[:, 0], count)
    on = on + rng.normal(0, 0.004, on.size)
    off = off + rng.normal(0, 0.004, off.size)
    timing = clip.fault("timing")
    sticking = clip.fault("sticking")
    if timing:
        trng = clip.stream("timing")
        on = on + (0.02 + 0.08 * timing) * (1 + 0.5 * trng.random(on.size))
        off = off + (0.01 + 0.04 * timing) * trng.random(off.size)
        keep = trng.random(on.size) > min(0.5, 0.25 * timing)
        on, off = on[keep], off[keep]
    t = np.arange(n) / sr
    gate = _gate(t, on, off, 0.015 * (1 + 8 * sticking), 0.01) * (1 - min(0.7, 0.4 * sticking))
    cavity = np.abs(resonances(clip.f, clip.unit("valve").uniform(1000, 3000), 3.0))
    shape = (0.4 + cavity) * highpass(clip.f, 400) * tilt(clip.f, -4.5)
    jet = colored_noise(n, rng, shape)
    hiss = jet * gate * np.sqrt(pres) * (1 + 0.05 * smooth_noise(n, sr, rng, 1.0))
    line = 0.05 * colored_noise(n, rng, tilt(clip.f, -3.0) * highpass(clip.f, 50))
    coil = tones(100.0 * t, np.arange(1.0, 4.0), np.array([1, 0.4, 0.2]), rng.uniform(0, 6, 3))
    buzz = 0.05 * coil * (gate > 0)
    if sticking:  # an unseated plunger lets the AC coil's field hammer it at 100 Hz
        buzz *= 1 + 15 * sticking
    pipe_hz = clip.unit("pipe").uniform(60, 200)
    hammer = ringdown(
        sr, np.array([pipe_hz, 2.1 * pipe_hz]), np.array([0.1, 0.05]), np.array([1, 0.4]), 0.4
    )
    on_pos = np.round(on * sr).astype(np.int64)
    off_pos = np.round(off * sr).astype(np.int64)
    amp_on = 2.5 * (1 + 0.1 * rng.standard_normal(on.size))
    amp_off = 3.0 * (1 + 0.1 * rng.standard_normal(off.size))
    clicks = events(n, on_pos, amp_on, part_impact(clip, "valve-open", 1000, 4000))
    clicks += events(n, off_pos, amp_off, part_impact(clip, "valve-close", 800, 3500))
    clicks += events(n, off_pos, 0.3 * pres * amp_off / 3.0, hammer)
    healthy = hiss + line + buzz + clicks
    ref = rms(healthy)
    sound = healthy
    if sticking:
        srng = clip.stream("sticking")
        k = 4
        chatter_pos = (on_pos[:, None] + srng.uniform(0.005, 0.08, (on.size, k)) * sr).ravel()
        chatter = events(
            n,
            chatter_pos,
            srng.uniform(0.3, 1.0, chatter_pos.size),
            part_impact(clip, "valve-open", 1000, 4000),
        )
        sound = with_fault(sound, chatter, sticking)
    leak = clip.fault("leak")
    if leak:
        lrng = clip.stream("leak")
        whistle_hz = min(clip.unit("leak").uniform(2000, 5000), 0.4 * sr)
        wcycles = np.cumsum(whistle_hz * (1 + 0.003 * smooth_noise(n, sr, lrng, 3.0))) / sr
        whistle = tones(wcycles, np.array([1.0, 2.0]), np.array([1.0, 0.2]), lrng.uniform(0, 6, 2))
        seep = colored_noise(n, lrng, highpass(clip.f, 1500) * lowpass(clip.f, 7000))
        sound = with_fault(sound, (unit(whistle) + seep) * (1 - gate), leak)
    return Sound(sound, ref)


def _stroke_profile(sr: int, length: float, vmax: float, acc: float, dwell: float) -> np.ndarray:
    """Velocity (m/s) over one back-and-forth cycle of a trapezoidal move, shape (k,)."""
    vpeak = min(vmax, np.sqrt(acc * length))
    t_acc = vpeak / acc
    t_move = 2 * t_acc + (length - vpeak * t_acc) / vpeak
    t = np.arange(int(t_move * sr)) / sr
    move = np.minimum.reduce([acc * t, np.full_like(t, vpeak), acc * (t_move - t)])
    rest = np.zeros(int(dwell * sr))
    return np.concatenate([move, rest, -move, rest])


def slider(clip: Clip) -> Sound:
    """Linear slide: a servo motor turns a ball screw that moves a carriage back and forth.

    The carriage follows a trapezoidal velocity profile (accelerate at ``ac``, cruise at
    ``vel``, decelerate, dwell, return). The screw turns at ``|v| / lead``, so the motor's
    pole-pass tone and the ball nut's ball-pass tone sweep up and down with the speed;
    the carriage's recirculating balls rolling on the rail make broadband noise growing
    with speed; the servo drive's PWM whines louder while it accelerates (current ~
    force); every start and stop knocks the structure. **Rail damage**: a dent on the
    rail clicks each time the carriage passes it. **Lubrication loss**: more friction
    noise and stick-slip squeal at low speed. **Backlash**: a worn nut knocks again
    after each reversal, when the gap closes.
    """
    rng = clip.stream("slider")
    unit_rng = clip.unit("slider")
    length = unit_rng.uniform(0.15, 0.35)
    lead = float(unit_rng.choice([0.005, 0.01]))
    dwell = unit_rng.uniform(0.1, 0.3)
    poles = int(unit_rng.integers(4, 6)) * 2
    pwm_hz = min(unit_rng.uniform(3500, 7000), 0.45 * clip.sr)
    dent = unit_rng.uniform(0.2, 0.8) * length
    vmax = clip.num("vel") / 1000.0
    acc = clip.num("ac")
    n, sr = clip.n, clip.sr
    cycle = _stroke_profile(sr, length, vmax, acc, dwell * (1 + 0.05 * rng.standard_normal()))
    shift = -int(rng.integers(cycle.size))
    v = np.resize(np.roll(cycle, shift), n)
    x = np.resize(np.roll(np.cumsum(cycle) / sr, shift), n)  # carriage position (m)
    speed = np.abs(v) / vmax
    a = np.abs(np.gradient(v) * sr) / acc
    screw = np.cumsum(np.abs(v) / lead) / sr + rng.random()
    orders = np.array([1.0, 2.0, poles, 2 * poles, 3.4, 6.8])
    whine = tones(screw, orders, np.array([0.3, 0.2, 1.0, 0.4, 0.6, 0.3]), rng.uniform(0, 6, 6))
    friction_lvl = 1 + 2 * clip.fault("lubrication")
    roll = (
        colored_noise(n, rng, highpass(clip.f, 800) * (0.3 + np.abs(housing_modes(clip))))
        * speed**1.2
    )
    t = np.arange(n) / sr
    pwm = cosine(pwm_hz * t, 1.0, rng.uniform(0, TWO_PI)) * (0.1 + 0.5 * np.minimum(a, 1.5))
    moving = speed > 1e-6
    starts = np.nonzero(np.diff(moving.astype(np.int8)) != 0)[0] + 1
    knock = part_impact(clip, "slider-stop", 300, 3000, 0.08)
    knocks = events(n, starts, 1.5 * acc / 2 * (1 + 0.1 * rng.standard_normal(starts.size)), knock)
    healthy = unit(whine * speed) + 0.6 * roll + 0.15 * pwm + knocks
    ref = rms(healthy)
    sound = healthy + (friction_lvl - 1) * 0.6 * roll
    if clip.fault("rail_damage"):
        hit = np.nonzero(np.diff(np.sign(x - dent)) != 0)[0] + 1
        clicks = events(n, hit, 0.3 + speed[hit], part_impact(clip, "rail", 1500, 7000))
        sound = with_fault(sound, clicks, 2 * clip.fault("rail_damage"))  # sparse: 2x level
    lub = clip.fault("lubrication")
    if lub:
        lrng = clip.stream("squeal")
        squeal_hz = min(clip.unit("squeal").uniform(1000, 3000), 0.4 * sr)
        stick = (speed > 0.01) & (speed < 0.35)
        bursts = np.clip(smooth_noise(n, sr, lrng, 20.0), 0, None) * stick
        sq = tones(
            np.cumsum(squeal_hz * (1 + 0.01 * smooth_noise(n, sr, lrng, 2.0))) / sr,
            np.arange(1.0, 4.0),
            np.array([1, 0.5, 0.2]),
            lrng.uniform(0, 6, 3),
        )
        sound = with_fault(sound, sq * bursts + 0.2 * unit(roll), lub)
    backlash = clip.fault("backlash")
    if backlash:
        brng = clip.stream("backlash")
        delay = (0.01 + 0.02 * min(backlash, 2)) * sr
        late = starts + np.round(delay * (1 + 0.2 * brng.random(starts.size))).astype(np.int64)
        sound = with_fault(
            sound, events(n, late, brng.uniform(0.7, 1.0, late.size), knock), 2 * backlash
        )
    return Sound(sound, ref)


SPECS = (
    MachineSpec(
        "valve",
        "solenoid valve on a water line, switched in a pattern",
        {
            "pat": Attribute(("00", "01", "02"), ("03",), "operating pattern"),
            "pres": Attribute(("2", "4"), ("2", "4"), "supply pressure (bar)"),
        },
        {
            "timing": "late opening/closing and missed cycles",
            "leak": "hiss and whistle while closed",
            "sticking": "chattering, slow partial opening, loud 100 Hz coil buzz",
        },
        valve,
    ),
    MachineSpec(
        "slider",
        "ball-screw linear slide moving back and forth",
        {
            "vel": Attribute(("300", "500", "700"), ("900", "1100"), "travel speed (mm/s)"),
            "ac": Attribute(("2", "4"), ("2", "4"), "acceleration (m/s^2)"),
        },
        {
            "rail_damage": "a click each time the carriage passes a dent",
            "lubrication": "more friction noise, stick-slip squeal at low speed",
            "backlash": "second knock after each reversal",
        },
        slider,
    ),
)
