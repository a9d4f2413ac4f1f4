"""Render one clip: machine sound model -> room -> + factory background -> microphone.

The level of a clip is set from the *healthy* machine plus background (-32 to -20
dBFS RMS, fixed per unit and domain, ±1 dB between clips), so an added fault makes
the clip louder, as it would on a fixed-gain recorder; a clip is only scaled down if
a peak would exceed 0.99 of full scale.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from edgeasd.errors import InputError
from edgeasd.synth.background import (
    background,
    environment,
    mic_response,
    position_response,
    room_response,
)
from edgeasd.synth.drift import (
    Recording,
    background_environment,
    drift_at,
    seating_response,
    warmup_response,
)
from edgeasd.synth.machines import MACHINE_TYPES
from edgeasd.synth.spec import Clip, MachineSpec

#: Default machine-to-background ratio (dB); DCASE's MIMII mixtures used 6, 0 and -6 dB.
DEFAULT_SNR_DB = 6.0
#: Mean RMS level of a healthy clip (dBFS); each unit and domain (recorder gain,
#: distance) gets a fixed offset within ±LEVEL_SPREAD_DB, each clip ±1 dB more.
LEVEL_DBFS = -26.0
LEVEL_SPREAD_DB = 6.0
DOMAINS = ("source", "target")


def machine_spec(machine: str) -> MachineSpec:
    """The spec of ``machine``, or :class:`InputError` naming the known types."""
    try:
        return MACHINE_TYPES[machine]
    except KeyError:
        raise InputError(
            f"unknown machine type {machine!r}",
            help="choose one of: " + ", ".join(MACHINE_TYPES),
        ) from None


def resolve_attributes(
    spec: MachineSpec, domain: str, attributes: dict | None, rng: np.random.Generator
) -> dict[str, str]:
    """Complete ``attributes`` with values drawn from ``domain``'s lists, in spec order.

    Numeric attributes may be given any number (``{"spd": 1650}``); their value must
    parse as a finite number. Unknown names raise :class:`InputError`.
    """
    given = dict(attributes or {})
    unknown = sorted(set(given) - set(spec.attributes))
    if unknown:
        raise InputError(
            f"{spec.name} has no attribute {', '.join(map(repr, unknown))}",
            help=f"{spec.name} attributes: " + ", ".join(spec.attributes),
        )
    out: dict[str, str] = {}
    for name, attr in spec.attributes.items():
        choices = attr.values(domain)
        value = given.get(name)
        if value is None:
            value = choices[int(rng.integers(len(choices)))]
        value = _token(value)
        if _is_numeric(attr.source[0]) and not _is_numeric(value):
            raise InputError(
                f"{spec.name} attribute {name}={value!r} is not a number",
                help=f"{attr.description}; e.g. one of {', '.join(attr.source)}",
            )
        if "_" in value or "/" in value or not value:
            raise InputError(
                f"attribute value {value!r} cannot appear in a DCASE file name",
                help="use values without '_' or '/'",
            )
        out[name] = value
    return out


def _token(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_numeric(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def render(
    machine: str,
    seconds: float,
    sample_rate: int,
    *,
    seed: int,
    attributes: dict | None = None,
    anomaly: str | None = None,
    severity: float = 1.0,
    domain: str = "source",
    section: int = 0,
    snr_db: float | None = DEFAULT_SNR_DB,
    recording: Recording | None = None,
) -> np.ndarray:
    """Simulate one recording of a machine.

    Parameters
    ----------
    machine : str
        A key of :data:`MACHINE_TYPES`.
    seconds : float
        Clip length (> 0).
    sample_rate : int
        Sample rate in Hz (8000 or more; models place resonances up to 0.45 ``sample_rate``).
    seed : int
        Clip seed (>= 0): same arguments and seed give bit-identical output. The same
        seed with and without ``anomaly`` gives the same healthy machine with and
        without the fault.
    attributes : dict, optional
        Attribute values (e.g. ``{"spd": "1500"}``); missing ones are drawn from the
        domain's values.
    anomaly : str, optional
        One of the machine's anomaly kinds; None for a normal clip.
    severity : float
        0 (no effect) to 3; 1 is obvious (the fault component about -6 dB relative to
        the machine), 0.1 subtle (about -26 dB).
    domain : str
        ``"source"`` or ``"target"``: attribute values and the room, microphone and
        background of that domain.
    section : int
        The physical machine unit (DCASE section): constants such as blade or tooth
        counts and resonances are fixed per (machine, section).
    snr_db : float or None
        Machine-to-background ratio in dB; None renders no background.
    recording : Recording, optional
        When (time, session) the clip was recorded: adds the within-condition variation of
        :mod:`edgeasd.synth.drift` (warm-up, wander of speed and load, changing background,
        microphone re-seating). None: the clip at the condition's nominal state (as before).

    Returns
    -------
    ndarray, shape (round(seconds * sample_rate),), float32 in [-1, 1]
    """
    spec = machine_spec(machine)
    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}", help="use 'source' or 'target'")
    if not (isinstance(seed, int | np.integer) and 0 <= seed < 2**63):
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(sample_rate, int | np.integer) and sample_rate >= 8000):
        raise InputError(f"sample_rate must be an integer >= 8000 Hz, got {sample_rate!r}")
    n = round(float(seconds) * sample_rate)
    if not (math.isfinite(seconds) and n >= 2):
        raise InputError(f"seconds must be positive and finite, got {seconds!r}")
    if anomaly is not None and anomaly not in spec.anomalies:
        raise InputError(
            f"{machine} has no anomaly {anomaly!r}",
            help=f"{machine} anomalies: " + ", ".join(spec.anomalies),
        )
    if not (math.isfinite(severity) and 0.0 <= severity <= 3.0):
        raise InputError(f"severity must be in [0, 3], got {severity!r}")
    if snr_db is not None and not math.isfinite(snr_db):
        raise InputError(f"snr_db must be finite or None, got {snr_db!r}")
    seed = int(seed)
    attrs = resolve_attributes(
        spec, domain, attributes, np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, 1])
    )
    clip = Clip(machine, int(section), n, int(sample_rate), attrs, anomaly, float(severity), seed)
    env = environment(clip, domain)
    drift = None
    if recording is not None:
        drift = drift_at(clip, domain, recording, len(env.bg_tones_hz))
        clip.operating = drift.operating
    sound = spec.model(clip)
    h = room_response(clip, env)
    if spec.position is not None:
        h = h * position_response(clip, spec.position + attrs[spec.position])
    dry = sfft.rfft(sound.signal)
    if drift is not None:
        dry = dry * warmup_response(clip, drift)
    wet = dry * h
    # healthy level at the microphone: the model's healthy RMS times the room's power gain
    gain = math.sqrt(_ms(wet) / max(_ms(dry), 1e-30))
    ref = sound.healthy_rms * gain
    if snr_db is not None:
        snr = snr_db + (drift.snr_offset_db if drift is not None else 0.0)
        noise = ref * 10 ** (-snr / 20)
        bg_env = env if drift is None else background_environment(env, drift)
        wet = wet + noise * background(clip, bg_env)
        ref = math.hypot(ref, noise)
    before = _ms(wet)
    wet = wet * mic_response(clip, env)
    if drift is not None:
        wet = wet * seating_response(clip, drift)
    ref *= math.sqrt(_ms(wet) / max(before, 1e-30))
    y = sfft.irfft(wet, n=n)
    offset = clip.unit(f"gain-{domain}").uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB)
    level_db = LEVEL_DBFS + offset + clip.stream("level").normal(0.0, 1.0)
    level = 10 ** ((level_db + (drift.gain_db if drift is not None else 0.0)) / 20)
    y *= level / max(ref, 1e-12)
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def _ms(spec: np.ndarray) -> float:
    """Mean power (up to a constant factor) of a signal given its rfft bins."""
    p = np.square(np.abs(spec))
    return float(2 * p.sum() - p[0])
