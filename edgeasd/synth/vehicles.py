"""Sound models of small vehicles: a toy car on a roller and a toy train on a track loop.

Both are driven by small brushed DC motors through gears (as in ToyADMOS2, the source
of DCASE's ToyCar and ToyTrain), so their sound is motor commutation and gear whine
scaled with the speed, plus the rolling of wheels on a surface.
"""

from __future__ import annotations

import numpy as np

from edgeasd.synth.dsp import (
    Rotation,
    colored_noise,
    cosine,
    crossings,
    events,
    filter_spectrum,
    highpass,
    impulses,
    lowpass,
    resonances,
    ringdown,
    rms,
    rotation,
    smooth_noise,
    tilt,
    tones,
    unit,
)
from edgeasd.synth.faults import rotor_fault
from edgeasd.synth.rotating import brush_sparks, dc_motor
from edgeasd.synth.spec import Attribute, Clip, MachineSpec, Sound, with_fault


def _shell(clip: Clip, name: str) -> np.ndarray:
    """Magnitude response of a plastic body: a few broad modes at 0.6--4 kHz, shape (n//2+1,)."""

    def make() -> np.ndarray:
        rng = clip.unit(name)
        centers = np.exp(rng.uniform(np.log(600), np.log(min(4000, 0.4 * clip.sr)), 4))
        modes = resonances(clip.f, centers, rng.uniform(3, 8, 4), rng.uniform(0.5, 1, 4))
        return 0.4 + np.abs(modes)

    return clip.unit_memo(("shell", name), make)


def _ring(sr: int, freqs: tuple, decays: tuple, amps: tuple, seconds: float) -> np.ndarray:
    """A fixed impact sound (damped modes), shape (round(seconds * sr),)."""
    return ringdown(sr, np.array(freqs), np.array(decays), np.array(amps, dtype=float), seconds)


def _gear_whine(clip: Clip, rot: Rotation, teeth: int, ratio: float) -> np.ndarray:
    """Gear mesh at ``teeth x motor rate`` with harmonics, modulated by the driven gear."""
    rng = clip.stream("gear-whine")
    carrier = tones(
        teeth * rot.cycles, np.arange(1.0, 4.0), np.array([1, 0.4, 0.2]), rng.uniform(0, 6, 3)
    )
    return carrier * (1 + 0.1 * cosine(rot.cycles / ratio, 1.0, rng.uniform(0, 6)))


def toy_car(clip: Clip) -> Sound:
    """Toy car running on a roller: DC motor, reduction gears, treaded tyres.

    Each car model (``car``) has its own motor constant (speed per volt), commutator,
    gear teeth and ratio, tyre tread and plastic body. The motor turns at
    ``fm = kv x spd`` (``spd`` = supply voltage); the pinion meshes at ``Z fm`` (a
    whine of 1--3 kHz), the wheels turn at ``fm / ratio`` and each tread block hits
    the roller (``tread x`` the wheel rate); rolling noise and the rumble of the roller
    rig grow with speed; the body's modes colour it all. **Gear**: a broken pinion
    tooth knocks once per motor revolution. **Tyre**: a flat spot thumps once per wheel
    revolution. **Brush**: worn motor brushes arc at random commutations. **Shaft**: a
    bent axle wobbles the car once per wheel revolution (the imbalance signature at the
    wheel rate).
    """
    rng = clip.stream("toy-car")
    car = clip.unit(f"car-{clip.attrs['car']}")
    kv = car.uniform(35, 60)
    segments = int(car.choice([3, 5]))
    teeth = int(car.integers(8, 13))
    ratio = car.uniform(12, 20)
    tread = int(car.integers(16, 31))
    rot = rotation(clip.n, clip.sr, kv * clip.num("spd"), rng, jitter=0.004)
    wheel = Rotation(rot.freq / ratio, rot.cycles / ratio + rng.random())
    speed = rot.freq / np.mean(rot.freq)
    taps = crossings(tread * wheel.cycles)
    tread_noise = impulses(clip.n, taps, 1 + 0.3 * rng.standard_normal(taps.size))
    rolling = colored_noise(clip.n, rng, highpass(clip.f, 300) * tilt(clip.f, -6.0))
    healthy = dc_motor(clip, rot, segments) + 0.5 * unit(_gear_whine(clip, rot, teeth, ratio))
    healthy += 0.4 * unit(filter_spectrum(tread_noise, highpass(clip.f, 200)))
    # the roller under the wheels and the rig's frame rumble at a few hundred Hz
    frame = np.abs(resonances(clip.f, clip.unit("roller").uniform(100, 250), 1.5))
    healthy += (0.5 * rolling + 1.5 * colored_noise(clip.n, rng, frame)) * speed
    body = _shell(clip, f"car-body-{clip.attrs['car']}") * lowpass(clip.f, 1500, 1)
    healthy = filter_spectrum(healthy, body)
    ref = rms(healthy)
    sound = healthy
    if clip.fault("shaft"):  # the body bobs: contact pressure, so rolling noise, pulses
        sound = rotor_fault(clip, healthy, wheel, kind="imbalance")
        bob = rolling * np.square(1 + cosine(wheel.cycles))
        sound = with_fault(sound, bob, clip.fault("shaft"))
    knock = _ring(clip.sr, (1500.0, 3100.0), (0.003, 0.002), (1.0, 0.6), 0.02)
    if clip.fault("gear"):
        hits = crossings(rot.cycles + clip.stream("gear").random())
        sound = with_fault(sound, events(clip.n, hits, 1.0, knock), 2 * clip.fault("gear"))
    if clip.fault("tyre"):
        thump = _ring(clip.sr, (180.0, 900.0, 2500.0), (0.01, 0.004, 0.002), (1.0, 0.6, 0.4), 0.05)
        hits = crossings(wheel.cycles + clip.stream("tyre").random())
        sound = with_fault(sound, events(clip.n, hits, 1.0, thump), 2 * clip.fault("tyre"))
    if clip.fault("brush"):
        sound = with_fault(sound, brush_sparks(clip, rot, segments), clip.fault("brush"))
    return Sound(sound, ref)


def toy_train(clip: Clip) -> Sound:
    """Toy train running round a track loop past the microphone.

    The locomotive's DC motor drives the wheels through a worm gear; the motor rate
    follows the train speed ``v`` (``fm = ratio v / (pi D)``). Every axle of every car
    clicks over each rail joint (spaced ``L``), giving the "clack-clack" groups of the
    axle spacing, at ``v / L`` per axle; the wheels rolling on the rails hiss. As the
    train goes round the loop its distance to the microphone changes: the level rises
    and falls once per lap. Curves and the controller make the speed wander.
    **Wheel flat**: a flat spot on one wheel strikes the rail once per wheel
    revolution. **Rail joint**: every third track piece is misaligned; each axle drops
    over the step with a loud double click. **Brush**: worn motor brushes arc.
    """
    rng = clip.stream("toy-train")
    train = clip.unit(f"train-{clip.attrs['car']}")
    track = clip.unit("track")
    cars = int(train.integers(2, 5))
    axles = np.sort(np.concatenate([c * 0.12 + np.array([0.02, 0.08]) for c in range(cars)]))
    diameter = train.uniform(0.010, 0.016)
    ratio = train.uniform(15, 30)
    segments = int(train.choice([3, 5]))
    joint = track.uniform(0.15, 0.25)
    loop = track.uniform(2.0, 4.0)
    n, sr = clip.n, clip.sr
    v = 0.06 * clip.num("spd") * (1 + 0.01 * rng.standard_normal())
    v = v * (1 + 0.05 * smooth_noise(n, sr, rng, 0.5))
    s = np.cumsum(v) / sr + rng.uniform(0, loop)  # distance travelled by the front (m)
    motor = Rotation(v * ratio / (np.pi * diameter), s * ratio / (np.pi * diameter))
    click = ringdown(
        sr,
        np.array([1800.0, 3500.0, 5200.0]),
        np.array([0.004, 0.003, 0.002]),
        np.array([1, 0.7, 0.4]),
        0.03,
        rng,
        0.3,
    )
    step = clip.fault("rail_joint")
    pos, amps = [], []
    for offset in axles:
        hits = crossings((s - offset) / joint)
        piece = np.floor((s[hits] - offset) / joint).astype(np.int64)
        loud = 1.0 + (4.0 * step * (piece % 3 == 0) if step else 0.0)
        pos.append(hits)
        amps.append(v[hits] / 0.4 * loud * (1 + 0.15 * rng.standard_normal(hits.size)))
        if step:  # the wheel lands after the step
            pos.append(hits + int(0.006 * sr))
            amps.append(0.6 * v[hits] / 0.4 * 2 * step * (piece % 3 == 0))
    clacks = events(n, np.concatenate(pos), np.concatenate(amps), click)
    # wheels on rails shake the track boards, which resonate at a few hundred Hz
    boards = np.abs(resonances(clip.f, track.uniform(200, 400), 1.5)) * 8.0
    rolling = colored_noise(n, rng, highpass(clip.f, 100) * (boards + tilt(clip.f, -3.0)))
    rolling *= v / 0.4
    healthy = dc_motor(clip, motor, segments) + 0.6 * unit(_gear_whine(clip, motor, 1, ratio))
    healthy = healthy + 1.5 * rolling + 5.0 * clacks
    healthy = filter_spectrum(healthy, _shell(clip, f"train-body-{clip.attrs['car']}"))
    lap = (s % loop) / loop - 0.5
    near = track.uniform(0.2, 0.5)
    gain = near / np.sqrt(near**2 + np.square(lap * loop / 2))
    ref = rms(healthy * gain)
    sound = healthy
    if clip.fault("wheel_flat"):
        turns = s / (np.pi * diameter) + clip.stream("flat").random()
        hits = crossings(turns)
        thunk = _ring(sr, (900.0, 2400.0), (0.008, 0.004), (1.0, 0.5), 0.04)  # wheel drop
        sound = with_fault(sound, events(n, hits, v[hits], thunk), 2.5 * clip.fault("wheel_flat"))
    if clip.fault("brush"):  # bursts of cracks: sparse, so twice the level
        sound = with_fault(sound, brush_sparks(clip, motor, segments), 2 * clip.fault("brush"))
    return Sound(sound * gain, ref)


SPECS = (
    MachineSpec(
        "toy_car",
        "toy car on a roller: DC motor, gears, treaded tyres",
        {
            "car": Attribute(("A1", "A2", "B1", "B2"), ("C1", "C2"), "car model"),
            "spd": Attribute(("2.5", "3.0", "3.5"), ("2.5", "3.0", "3.5"), "motor voltage (V)"),
            "mic": Attribute(("1", "2"), ("1", "2"), "microphone position"),
        },
        {
            "gear": "broken pinion tooth: a knock every motor revolution",
            "tyre": "flat spot: a thump every wheel revolution",
            "brush": "worn brushes: random arcing cracks",
            "shaft": "bent axle: wobble at the wheel rate",
        },
        toy_car,
        position="mic",
    ),
    MachineSpec(
        "toy_train",
        "toy train on a track loop: DC motor, worm gear, rail joints",
        {
            "car": Attribute(("A", "B", "C"), ("D", "E"), "train model"),
            "spd": Attribute(("5", "7", "9"), ("5", "7", "9"), "speed setting"),
            "mic": Attribute(("1", "2"), ("1", "2"), "microphone position"),
        },
        {
            "wheel_flat": "a click every wheel revolution",
            "rail_joint": "misaligned track pieces: loud double clicks",
            "brush": "worn brushes: random arcing cracks",
        },
        toy_train,
        position="mic",
    ),
)
