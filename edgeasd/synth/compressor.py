"""Sound model of a belt-driven reciprocating air compressor.

Its sound follows the crank: valve plates slamming at fixed crank angles, gas
pulsation at crank harmonics, intake hiss during the suction stroke, and the motor
and belt that drive it.
"""

from __future__ import annotations

import numpy as np

from edgeasd.synth.dsp import (
    TWO_PI,
    Rotation,
    colored_noise,
    cosine,
    crossings,
    events,
    highpass,
    resonance,
    rms,
    rotation,
    smooth_noise,
    tilt,
    tones,
    unit,
)
from edgeasd.synth.faults import rotor_fault
from edgeasd.synth.reciprocating import part_impact
from edgeasd.synth.rotating import ROTOR_FAULTS, motor_noise
from edgeasd.synth.spec import Attribute, Clip, MachineSpec, Sound, with_fault


def _discharge_angle(pressure_bar: float) -> float:
    """Crank angle (revolutions after top dead centre) where the discharge valve opens.

    The gas is compressed polytropically (``p V^1.3`` constant) from atmospheric at
    bottom dead centre; the valve opens when the cylinder pressure reaches the line
    pressure, i.e. at the swept-volume fraction ``(p_line / p_atm)^(-1/1.3)``, with the
    piston's volume fraction ``(1 - cos phi) / 2``.
    """
    frac = ((pressure_bar + 1.0) / 1.0) ** (-1 / 1.3)
    return 1.0 - np.arccos(1.0 - 2.0 * frac) / TWO_PI


def compressor(clip: Clip) -> Sound:
    """Belt-driven reciprocating air compressor.

    An induction motor drives the crankshaft through a V-belt (sheave ratio ``r``, so
    ``f_crank = f_motor / r``; the belt itself passes at a few Hz and flaps). In each
    cylinder, per crank revolution: the suction valve opens after top dead centre and
    air rushes in (intake hiss), closes at bottom dead centre; the gas is compressed
    until its pressure reaches the line pressure, then the discharge valve opens (later
    at higher line pressure, see :func:`_discharge_angle`) and slams shut at top dead
    centre. The valve plates' impacts ring their modes at 1.5--5 kHz; the pressure
    pulsation gives strong low crank-rate harmonics. **Valve timing fault**: a broken
    or weak discharge-valve spring lets the plate close late and flutter, and compressed
    air rushes back through it while the piston returns (backflow hiss). **Belt slip**:
    a worn or loose belt slips at each compression stroke (torque peak): the crank
    slows and wanders against the motor and the belt squeals in bursts.
    """
    rng = clip.stream("compressor")
    unit_rng = clip.unit("compressor")
    cylinders = int(unit_rng.integers(1, 3))
    ratio = unit_rng.uniform(2.5, 3.5)
    belt_order = unit_rng.uniform(0.12, 0.2)
    n, sr = clip.n, clip.sr
    fc = clip.num("rpm") / 60.0
    pres = clip.num("pres")
    motor = rotation(n, sr, fc * ratio, rng, jitter=0.004)
    slip_sev = clip.fault("belt_slip")
    crank_freq = motor.freq / ratio
    if slip_sev:
        nominal = motor.cycles / ratio
        torque = (0.5 + 0.5 * cosine(nominal, cylinders)) ** 4
        wander = np.abs(smooth_noise(n, sr, clip.stream("belt-slip"), 1.0))
        slip = slip_sev * (0.02 + 0.04 * torque + 0.02 * wander)
        crank_freq = crank_freq * (1 - np.minimum(slip, 0.3))
    crank = Rotation(crank_freq, np.cumsum(crank_freq) / sr + rng.random())
    late = clip.fault("valve_timing")
    d_open = _discharge_angle(pres)
    angles = {
        "suction_open": 0.08,
        "suction_close": 0.5,
        "discharge_open": d_open,
        "discharge_close": 1.0,
    }
    if late:
        angles["discharge_close"] += 0.03 + 0.05 * min(late, 2)
    weights = {
        "suction_open": 0.4,
        "suction_close": 0.3,
        "discharge_open": 0.6,
        "discharge_close": 1.0,
    }
    slam = part_impact(clip, "compressor-valve", 1500, 5000)
    clicks = np.zeros(n)
    closes = []
    for cyl in range(cylinders):
        for name, angle in angles.items():
            pos = crossings(crank.cycles - angle - cyl / cylinders)
            amp = weights[name] * (pres / 8) * (1 + 0.1 * rng.standard_normal(pos.size))
            clicks += events(n, pos, amp, slam)
            if name == "discharge_close":
                closes.append(pos)
    k = np.arange(1.0, 16.0)
    pulsation = tones(cylinders * crank.cycles, k, (pres / 8) / k, rng.uniform(0, TWO_PI, k.size))
    suction = ((crank.cycles * cylinders) % 1.0 > 0.08) & ((crank.cycles * cylinders) % 1.0 < 0.5)
    intake = colored_noise(n, rng, highpass(clip.f, 300) * tilt(clip.f, -3.0)) * suction
    belt = tones(
        belt_order * motor.cycles,
        np.arange(1.0, 5.0),
        np.array([1, 0.5, 0.3, 0.2]),
        rng.uniform(0, 6, 4),
    )
    healthy = 2.0 * clicks + 0.5 * unit(pulsation) + 0.3 * intake + 0.6 * motor_noise(clip, motor)
    healthy += 0.1 * unit(belt)
    ref = rms(healthy)
    sound = rotor_fault(clip, healthy, crank)
    if late:
        flutter_pos = np.concatenate([c + int(d * sr) for c in closes for d in (0.004, 0.009)])
        flutter = events(n, flutter_pos, 0.6, slam)
        # compressed air leaks back through the open valve while the piston returns
        phase = (crank.cycles * cylinders) % 1.0
        backflow = colored_noise(
            n, clip.stream("backflow"), resonance(clip.f, clip.unit("gap").uniform(2500, 5000), 4.0)
        )
        backflow *= np.clip(1.0 - phase / 0.25, 0.0, 1.0)
        sound = with_fault(sound, unit(flutter) + unit(backflow), late)
    if slip_sev:
        srng = clip.stream("squeal")
        squeal_hz = min(clip.unit("belt-squeal").uniform(1500, 3000), 0.4 * sr)
        t = np.arange(n) / sr
        sq = tones(
            squeal_hz * t, np.arange(1.0, 4.0), np.array([1, 0.6, 0.3]), srng.uniform(0, 6, 3)
        )
        # the belt squeals while its slip exceeds the stick-slip threshold: at the torque
        # peaks of the compression strokes, more or less as the tension wanders
        gate = np.clip(2.0 * wander - 0.4, 0.0, 1.0) * (0.3 + 0.7 * torque)
        sound = with_fault(sound, sq * gate * (1 + 0.3 * smooth_noise(n, sr, srng, 10.0)), slip_sev)
    return Sound(sound, ref)


SPECS = (
    MachineSpec(
        "compressor",
        "belt-driven reciprocating air compressor",
        {
            "rpm": Attribute(("600", "750", "900"), ("600", "750", "900"), "crank speed (rpm)"),
            "pres": Attribute(("6", "8"), ("10",), "line pressure (bar)"),
        },
        {
            "valve_timing": "late, fluttering discharge-valve closure with backflow hiss",
            "belt_slip": "crank speed wander and belt squeal bursts",
            "looseness": ROTOR_FAULTS["looseness"],
            "bearing": ROTOR_FAULTS["bearing"],
        },
        compressor,
    ),
)
