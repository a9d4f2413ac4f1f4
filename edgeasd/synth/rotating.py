"""Sound models of rotating machines: fan, pump, gearbox and bearing test rig.

Each model builds the healthy machine from its physical sources, then lets
:func:`edgeasd.synth.faults.rotor_fault` or its own fault code add the anomaly. All
speeds carry a per-clip offset and a slow wander, all phases are random, and load
terms vary slowly, so no two normal clips are alike.
"""

from __future__ import annotations

import numpy as np

from edgeasd.synth.dsp import (
    TWO_PI,
    Rotation,
    colored_noise,
    cosine,
    crossings,
    filter_spectrum,
    harmonic_series,
    highpass,
    impulses,
    lowpass,
    resonances,
    rms,
    rotation,
    smooth_noise,
    tilt,
    tones,
    unit,
)
from edgeasd.synth.faults import bearing_hum, housing_modes, rotor_fault
from edgeasd.synth.spec import Attribute, Clip, MachineSpec, Sound, with_fault

ROTOR_FAULTS = {
    "imbalance": "1x tone and 1x amplitude modulation (sidebands at ± shaft rate)",
    "misalignment": "2x-dominated shaft harmonics and 2x modulation",
    "looseness": "1x..12x harmonics, half-orders and once-per-revolution knocks",
    "bearing": "outer-race spall: impacts at BPFO ringing housing resonances",
}


def motor_noise(clip: Clip, rot: Rotation, line_hz: float = 50.0) -> np.ndarray:
    """An induction motor's own sound, unit RMS, shape (n,).

    Magnetostriction and the rotating field pull the stator at twice the line
    frequency (100 Hz hum and harmonics); the rotor bars passing the stator slots give
    the rotor slot harmonic ``R fr`` with sidebands at ``± 2 f_line``; the motor's
    cooling fan adds a little broadband noise.
    """
    rng = clip.stream("motor")
    unit_rng = clip.unit("motor")
    bars = int(unit_rng.integers(26, 44))
    t = clip.mains_time()
    hum_amps = np.array([1.0, 0.4, 0.25, 0.1])
    hum = tones(2 * line_hz * t, np.arange(1.0, 5.0), hum_amps, unit_rng.uniform(0, TWO_PI, 4))
    slot_cycles = bars * rot.cycles
    slot = tones(slot_cycles, np.array([1.0, 2.0]), np.array([1.0, 0.3]), rng.uniform(0, 6, 2))
    slot *= 1 + 0.5 * cosine(2 * line_hz * t)
    fan = colored_noise(clip.n, rng, tilt(clip.f, -3.0) * highpass(clip.f, 200.0))
    return unit(unit(hum) + 0.5 * unit(slot) + 0.4 * fan)


def dc_motor(clip: Clip, rot: Rotation, segments: int) -> np.ndarray:
    """A small brushed DC motor's sound, unit RMS, shape (n,).

    Two brushes pass the ``segments`` gaps of the commutator, switching the winding
    current ``2 x segments`` times per revolution: torque ripple and magnetic forces
    at multiples of that commutation rate (tones), and, at each switching, brush
    friction and tiny sparks (broadband noise above ~1 kHz pulsing at the same rate).
    """
    rng = clip.stream("dc-motor")
    rate = 2.0 * segments
    comm = tones(
        rate * rot.cycles, np.arange(1.0, 4.0), np.array([1, 0.5, 0.3]), rng.uniform(0, 6, 3)
    )
    brush = colored_noise(clip.n, rng, highpass(clip.f, 1000) * tilt(clip.f, -5.0, 2000))
    return unit(unit(comm) + unit(brush * (1 + 0.5 * cosine(rot.cycles, rate))))


def brush_sparks(clip: Clip, rot: Rotation, segments: int) -> np.ndarray:
    """Arcing of worn brushes, unit RMS, shape (n,).

    A worn or bouncing brush loses contact at random commutations and the interrupted
    current arcs: sharp broadband cracks (strongest above 2 kHz) at a random subset of
    the commutation instants, with random strength, in bursts while the brush bounces.
    """
    rng = clip.stream("brush-sparks")
    times = crossings(2.0 * segments * rot.cycles)
    bouncing = np.clip(smooth_noise(clip.n, clip.sr, rng, 4.0), 0.0, None)
    times = times[rng.random(times.size) < 0.8 * bouncing[times]]
    cracks = impulses(clip.n, times, rng.exponential(1.0, times.size))
    return unit(filter_spectrum(cracks, highpass(clip.f, 2000, 2) * lowpass(clip.f, 7000)))


def structure_lines(clip: Clip, rot: Rotation) -> np.ndarray:
    """Shaft-harmonic lines radiated by the housing, unit RMS, shape (n,).

    The periodic forces of a turning rotor (residual imbalance, blade and magnetic
    pulses, bearing stiffness variation) contain harmonics of the shaft rate far up in
    frequency; the housing radiates those near its resonances best. Harmonic ``m`` gets
    the amplitude ``|H(m fr)| / sqrt(m)`` of the housing response ``H``: a comb of lines
    at multiples of ``fr`` whose envelope follows the structure's modes.
    """
    fr = float(np.mean(rot.freq))
    orders = np.arange(1, max(2, int(0.45 * clip.sr / fr)))
    modes = housing_modes(clip, 300.0, 6000.0)
    gain = np.abs(np.interp(orders * fr, clip.f, np.abs(modes))) / np.sqrt(orders)
    phases = np.exp(1j * clip.unit("structure-lines").uniform(0, TWO_PI, orders.size))
    return unit(harmonic_series(rot.cycles, gain * phases))


def fan(clip: Clip) -> Sound:
    """Industrial fan: blade-pass tones and aerodynamic broadband noise.

    Each of ``B`` blades sweeps a pressure pulse past the microphone once per
    revolution, so the pressure is a periodic function of the shaft angle whose
    Fourier coefficients are ``P_m = G(m) sum_b a_b exp(-2 pi j m (b / B + d_b))``
    (pulse shape ``G``, blade strength ``a_b``, angular position error ``d_b``). With
    identical, evenly spaced blades only multiples of the blade-pass frequency
    ``BPF = B fr`` survive; manufacturing tolerances leave weak sidebands at shaft-rate
    spacing. A damaged or bent blade breaks the symmetry: strong 1x-spaced sidebands
    around the BPF harmonics. Vortex shedding from the blades gives a broadband hump
    whose centre scales with tip speed (Strouhal), amplitude-modulated at BPF by the
    blades passing the housing cut-off.
    """
    rng = clip.stream("fan")
    unit_rng = clip.unit("fan")
    blades = int(unit_rng.integers(5, 10))
    sharp = unit_rng.uniform(1.5, 3.5)
    strength = 1 + 0.02 * unit_rng.standard_normal(blades)
    spacing = 0.002 * unit_rng.standard_normal(blades)
    strouhal = unit_rng.uniform(20, 40)
    fr = clip.num("spd") / 60.0
    rot = rotation(clip.n, clip.sr, fr, rng, jitter=0.003)
    blade_damage = clip.fault("blade_damage")
    if blade_damage:
        b = int(clip.stream("blade").integers(blades))
        strength[b] *= 1 - min(0.9, 0.7 * blade_damage)
        spacing[b] += 0.02 * blade_damage
    m = np.arange(1, min(int(3 * blades * sharp), int(0.45 * clip.sr / fr)) + 1)
    pattern = np.exp(-2j * np.pi * np.outer(m, np.arange(blades) / blades + spacing)) @ strength
    coeffs = np.exp(-np.square(m / (blades * sharp))) * pattern / blades
    tonal = harmonic_series(rot.cycles, coeffs * np.exp(1j * rng.uniform(0, TWO_PI)))
    hump = np.exp(-0.5 * np.square(np.log2(np.maximum(clip.f, 1) / (strouhal * fr)) / 1.2))
    flow = colored_noise(clip.n, rng, (hump + 0.3 * tilt(clip.f, -4.5, 500)) * highpass(clip.f, 50))
    flow *= 1 + 0.25 * cosine(rot.cycles, blades) + 0.1 * smooth_noise(clip.n, clip.sr, rng, 0.5)
    healthy = unit(tonal) + 0.8 * unit(flow) + 0.25 * motor_noise(clip, rot)
    healthy += 0.15 * bearing_hum(clip, rot) + 0.3 * structure_lines(clip, rot)
    ref = rms(healthy)
    sound = rotor_fault(clip, healthy, rot)
    if blade_damage:  # flow separation behind the damaged blade, once per revolution
        sep = colored_noise(
            clip.n, clip.stream("blade"), highpass(clip.f, 300) * lowpass(clip.f, 3000)
        )
        sound = with_fault(sound, sep * np.square(1 + cosine(rot.cycles)), blade_damage)
    return Sound(sound, ref)


def pump(clip: Clip) -> Sound:
    """Centrifugal pump driven by an induction motor.

    The impeller's ``Z`` vanes pass the volute tongue at the vane-pass frequency
    ``VPF = Z fr``, a tone (with harmonics) that strengthens away from the best
    efficiency point (100 % flow), where flow meets the tongue at the wrong angle.
    Turbulent flow noise grows with the square of the flow rate and is coloured by
    acoustic modes of the pipe; at low flow, recirculation adds unsteady low-frequency
    rumble. **Cavitation**: where the local pressure falls below vapour pressure,
    bubbles form and collapse violently as they reach higher pressure -- a crackle of
    broadband impulses, strongest above 2 kHz, whose rate follows the vanes (bubbles
    collapse as each vane passes), while the vane-pass tone becomes unsteady.
    """
    rng = clip.stream("pump")
    unit_rng = clip.unit("pump")
    vanes = int(unit_rng.integers(5, 8))
    pipe = unit_rng.uniform(90, 160)
    fr = clip.num("rpm") / 60.0
    q = clip.num("flow") / 100.0
    rot = rotation(clip.n, clip.sr, fr, rng, jitter=0.003)
    cav = clip.fault("cavitation")
    orders = vanes * np.arange(1.0, 5.0)
    vpf_amp = (0.4 + 1.5 * abs(1 - q)) * np.array([1.0, 0.5, 0.3, 0.15])
    unsteady = 1 + (0.3 * cav + 0.05) * smooth_noise(clip.n, clip.sr, rng, 8.0)
    vpf = tones(rot.cycles, orders, vpf_amp, rng.uniform(0, TWO_PI, 4)) * unsteady
    shaft = tones(rot.cycles, np.array([1.0, 2.0]), np.array([0.3, 0.1]), rng.uniform(0, 6, 2))
    modes = resonances(clip.f, pipe * np.arange(1, 9), 8.0, 1 / np.sqrt(np.arange(1, 9)))
    shape = (0.3 + np.abs(modes)) * tilt(clip.f, -3.0, 300) * highpass(clip.f, 40)
    flow = colored_noise(clip.n, rng, shape) * q**2
    flow *= 1 + 0.1 * smooth_noise(clip.n, clip.sr, rng, 0.3)
    recirc = colored_noise(clip.n, rng, lowpass(clip.f, 150) * highpass(clip.f, 10))
    recirc *= max(0.0, 0.8 - q) * (1 + 0.5 * smooth_noise(clip.n, clip.sr, rng, 2.0))
    healthy = 0.6 * (vpf + shaft) / max(rms(vpf + shaft), 1e-12) + flow + recirc
    healthy = healthy + 0.5 * motor_noise(clip, rot) + 0.1 * bearing_hum(clip, rot)
    healthy += 0.2 * structure_lines(clip, rot)
    ref = rms(healthy)
    sound = rotor_fault(clip, healthy, rot)
    if cav:
        crng = clip.stream("cavitation")
        rate = (300 + 900 * min(cav, 1.5)) * (1 + 0.8 * cosine(rot.cycles, vanes))
        rate *= np.exp(0.5 * smooth_noise(clip.n, clip.sr, crng, 3.0))
        pos = np.nonzero(crng.random(clip.n) < rate / clip.sr)[0]
        clicks = impulses(clip.n, pos, crng.exponential(1.0, pos.size))
        crackle = filter_spectrum(
            clicks, highpass(clip.f, 2000, 3) * (0.5 + np.abs(housing_modes(clip)))
        )
        sound = with_fault(sound, crackle, cav)
    return Sound(sound, ref)


def gearbox(clip: Clip) -> Sound:
    """Single-stage spur gearbox driven by a DC motor, loaded by a weight.

    The teeth mesh at ``GMF = Z1 fr1`` (pinion teeth ``Z1``, pinion speed ``fr1``,
    which follows the motor voltage); the transmission error -- the elastic deflection
    of the loaded teeth -- excites the GMF and its harmonics with an amplitude that
    grows with the load. Eccentricity and tooth-spacing errors of the pinion and of the
    gear (speed ``fr2 = fr1 Z1 / Z2``) modulate the mesh, giving sidebands at
    ``GMF ± k fr1`` and ``GMF ± k fr2``. The DC motor (:func:`dc_motor`) adds
    commutation tones and brush noise. **Tooth crack**: the cracked tooth is softer, so
    once per pinion revolution the mesh amplitude dips and the teeth knock -- a comb of
    ``fr1`` sidebands and impacts. **Wear**: distributed pitting raises the GMF
    harmonics and adds broadband mesh noise modulated at the GMF.
    """
    rng = clip.stream("gearbox")
    unit_rng = clip.unit("gearbox")
    z1 = int(unit_rng.integers(13, 24))
    z2 = int(unit_rng.integers(37, 72)) | 1
    slots = int(unit_rng.integers(3, 7))
    tooth_errors = 0.04 * (unit_rng.standard_normal(6) + 1j * unit_rng.standard_normal(6))
    fr1 = 16.0 * clip.num("volt")
    load = 0.5 + clip.num("wt") / 100.0
    rot1 = rotation(clip.n, clip.sr, fr1, rng, jitter=0.006 + 0.002 * load)
    cycles2 = rot1.cycles * z1 / z2 + rng.random()
    wear = clip.fault("wear")
    crack = clip.fault("tooth_crack")
    mis = clip.fault("misalignment")  # uneven tooth contact: 2x GMF, 2x shaft modulation
    g = np.array([1.0, 0.45 + 0.6 * wear + 0.8 * mis, 0.2 + 0.5 * wear])
    carrier = tones(z1 * rot1.cycles, np.arange(1.0, 4.0), g, rng.uniform(0, TWO_PI, 3))
    am1 = 1 + harmonic_series(rot1.cycles, tooth_errors)
    am2 = 1 + 0.05 * cosine(cycles2, 1.0, rng.uniform(0, TWO_PI))
    if mis:
        am1 = am1 * (1 + min(0.6, 0.3 * mis) * cosine(rot1.cycles, 2.0))
    if crack:
        width = 0.6 / z1
        angle = (rot1.cycles - clip.stream("crack").random()) % 1.0
        dip = np.exp(-0.5 * np.square(np.minimum(angle, 1 - angle) / width))
        am1 *= 1 - min(0.8, 0.5 * crack) * dip
    mesh = carrier * am1 * am2 * load
    healthy = unit(mesh) + 0.4 * dc_motor(clip, rot1, slots) + 0.15 * bearing_hum(clip, rot1)
    healthy += 0.2 * structure_lines(clip, rot1)
    ref = rms(healthy)
    sound = rotor_fault(clip, healthy, rot1)
    if crack:
        hits = impulses(clip.n, np.nonzero(np.diff(np.floor(rot1.cycles)))[0], 1.0)
        sound = with_fault(sound, filter_spectrum(hits, housing_modes(clip)), crack)
    if wear:
        noise = colored_noise(clip.n, clip.stream("wear"), highpass(clip.f, 300))
        sound = with_fault(sound, noise * (1 + cosine(rot1.cycles, z1)), 0.6 * wear)
    return Sound(sound, ref)


def bearing(clip: Clip) -> Sound:
    """Bearing test rig: a motor turning a shaft on two rolling-element bearings.

    A healthy rig is a quiet machine: the rolling noise of the bearings through the
    housing modes, a little 1x..4x from residual imbalance and coupling, and the
    motor. The microphone position (``loc``) sets which directivity and housing
    resonances dominate. The defects (outer race, inner race, ball, looseness) are
    the impact signatures of :mod:`edgeasd.synth.faults`.
    """
    rng = clip.stream("bearing")
    fr = clip.num("vel")
    rot = rotation(clip.n, clip.sr, fr, rng, jitter=0.004)
    shaft = tones(
        rot.cycles, np.arange(1.0, 5.0), np.array([1, 0.5, 0.25, 0.1]), rng.uniform(0, 6, 4)
    )
    cage = 1 + 0.1 * cosine(rot.cycles, 0.4)
    healthy = 0.5 * bearing_hum(clip, rot) * cage + 0.4 * unit(shaft) + motor_noise(clip, rot)
    healthy += 0.5 * structure_lines(clip, rot)
    ref = rms(healthy)
    return Sound(rotor_fault(clip, healthy, rot), ref)


SPECS = (
    MachineSpec(
        "fan",
        "industrial fan: blade-pass tones, vortex noise, induction motor",
        {
            "spd": Attribute(("1200", "1500", "1800"), ("2400",), "shaft speed (rpm)"),
            "mic": Attribute(("1", "2"), ("1", "2"), "microphone position"),
        },
        {
            "imbalance": ROTOR_FAULTS["imbalance"],
            "blade_damage": "uneven blade: shaft-rate sidebands around blade-pass tones",
            "bearing": ROTOR_FAULTS["bearing"],
            "looseness": ROTOR_FAULTS["looseness"],
        },
        fan,
        position="mic",
    ),
    MachineSpec(
        "pump",
        "centrifugal pump: vane-pass tones, flow noise, pipe modes, induction motor",
        {
            "rpm": Attribute(("1450", "1750"), ("1450", "1750"), "shaft speed (rpm)"),
            "flow": Attribute(("60", "80", "100"), ("130",), "flow rate (% of best efficiency)"),
        },
        {
            "cavitation": "bubble-collapse crackle above 2 kHz, unsteady vane-pass tone",
            "imbalance": ROTOR_FAULTS["imbalance"],
            "misalignment": ROTOR_FAULTS["misalignment"],
            "bearing": ROTOR_FAULTS["bearing"],
        },
        pump,
    ),
    MachineSpec(
        "gearbox",
        "single-stage spur gearbox on a DC motor lifting a weight",
        {
            "volt": Attribute(
                ("1.0", "1.5", "2.0", "2.5"), ("1.0", "1.5", "2.0", "2.5"), "motor voltage (V)"
            ),
            "wt": Attribute(("0", "50", "100", "150"), ("200", "250"), "load weight (g)"),
        },
        {
            "tooth_crack": "once-per-revolution mesh dip and knock: comb of shaft-rate sidebands",
            "wear": "raised mesh harmonics and broadband mesh noise",
            "misalignment": ROTOR_FAULTS["misalignment"],
            "bearing": ROTOR_FAULTS["bearing"],
        },
        gearbox,
    ),
    MachineSpec(
        "bearing",
        "bearing test rig: shaft on rolling-element bearings",
        {
            "vel": Attribute(
                ("8", "12", "16", "20"), ("8", "12", "16", "20"), "shaft speed (rev/s)"
            ),
            "loc": Attribute(("A", "B"), ("C", "D"), "microphone location"),
        },
        {
            "outer_race": "impacts at BPFO ringing housing resonances",
            "inner_race": "impacts at BPFI, modulated at shaft rate (load zone)",
            "ball": "impacts at 2 x BSF, modulated at cage rate",
            "looseness": ROTOR_FAULTS["looseness"],
        },
        bearing,
        position="loc",
    ),
)
