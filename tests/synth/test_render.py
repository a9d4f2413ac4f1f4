"""The sound models: levels, determinism, fault signatures, domains, physics."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.errors import InputError
from edgeasd.synth import MACHINE_TYPES, render
from edgeasd.synth.render import LEVEL_DBFS, LEVEL_SPREAD_DB

SR = 16000
MACHINES = sorted(MACHINE_TYPES)


def _first_source(machine: str) -> dict[str, str]:
    return {k: a.source[0] for k, a in MACHINE_TYPES[machine].attributes.items()}


def test_registry_describes_at_least_six_machines_with_domains_and_faults():
    assert len(MACHINE_TYPES) >= 6
    for name, spec in MACHINE_TYPES.items():
        assert spec.name == name
        assert spec.attributes and len(spec.anomalies) >= 3
        assert len(spec.model.__doc__ or "") > 300, f"{name}: physics not documented"
        shifted = [k for k, a in spec.attributes.items() if set(a.target) != set(a.source)]
        assert shifted, f"{name}: no attribute moves in the target domain"
        for attr in spec.attributes.values():
            for value in attr.source + attr.target:
                assert value and "_" not in value and "/" not in value
        if spec.position is not None:
            assert spec.position in spec.attributes


@pytest.mark.parametrize("machine", MACHINES)
def test_clip_is_float32_mono_in_range_and_at_the_nominal_level(machine):
    x = render(machine, 1.0, SR, seed=3)
    assert x.dtype == np.float32 and x.shape == (SR,)
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
    level = 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    assert LEVEL_DBFS - LEVEL_SPREAD_DB - 4 < level < LEVEL_DBFS + LEVEL_SPREAD_DB + 4


@pytest.mark.parametrize("machine", MACHINES)
def test_same_seed_same_samples_other_seed_other_samples(machine):
    a = render(machine, 0.5, SR, seed=11, domain="target")
    b = render(machine, 0.5, SR, seed=11, domain="target")
    c = render(machine, 0.5, SR, seed=12, domain="target")
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("machine", MACHINES)
def test_severity_zero_is_exactly_the_normal_twin(machine):
    # faults draw from their own random streams: the healthy machine is untouched
    normal = render(machine, 0.5, SR, seed=5)
    for kind in MACHINE_TYPES[machine].anomalies:
        assert np.array_equal(render(machine, 0.5, SR, seed=5, anomaly=kind, severity=0.0), normal)


@pytest.mark.parametrize("machine", MACHINES)
def test_each_obvious_anomaly_lies_outside_the_spread_of_normal_clips(machine, clip_distance):
    attrs = _first_source(machine)
    normals = [render(machine, 2.0, SR, seed=s, attributes=attrs) for s in (1, 2, 3)]
    spread = max(
        np.mean([clip_distance(x, y) for j, y in enumerate(normals) if j != i])
        for i, x in enumerate(normals)
    )
    for kind in MACHINE_TYPES[machine].anomalies:
        y = render(machine, 2.0, SR, seed=9, attributes=attrs, anomaly=kind, severity=1.0)
        ratio = np.mean([clip_distance(y, x) for x in normals]) / spread
        assert ratio > 1.15, f"{machine}/{kind}: anomaly-vs-normal / normal-vs-normal = {ratio:.2f}"


@pytest.mark.parametrize(
    ("machine", "kind"),
    [("fan", "bearing"), ("pump", "cavitation"), ("valve", "leak"), ("compressor", "belt_slip")],
)
def test_severity_goes_from_subtle_to_obvious(machine, kind, clip_distance):
    normal = render(machine, 2.0, SR, seed=4)
    d = [
        clip_distance(normal, render(machine, 2.0, SR, seed=4, anomaly=kind, severity=s))
        for s in (0.1, 0.4, 1.0)
    ]
    assert d[0] < d[1] < d[2]


@pytest.mark.parametrize("machine", MACHINES)
def test_target_domain_sounds_different_from_source(machine, clip_distance):
    spec = MACHINE_TYPES[machine]
    attrs = _first_source(machine)
    source = [render(machine, 2.0, SR, seed=s, attributes=attrs) for s in (1, 2)]
    moved = {k: a.target[0] for k, a in spec.attributes.items()}
    target = render(machine, 2.0, SR, seed=1, domain="target", attributes=moved)
    assert clip_distance(source[0], target) > 1.2 * clip_distance(source[0], source[1])


def test_attributes_are_drawn_from_the_domain_and_can_be_given():
    from edgeasd.synth.render import resolve_attributes

    spec = MACHINE_TYPES["pump"]
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert (
            resolve_attributes(spec, "target", None, rng)["flow"] in spec.attributes["flow"].target
        )
    assert resolve_attributes(spec, "source", {"flow": 90.0}, rng)["flow"] == "90"


def test_fan_blade_pass_tone_follows_the_shaft_speed():
    def peak_hz(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        f = np.fft.rfftfreq(x.size, 1 / SR)
        band = (f > 60) & (f < 1500)
        return float(f[band][np.argmax(spec[band])])

    slow = render("fan", 4.0, SR, seed=2, attributes={"spd": 1200, "mic": 1}, snr_db=None)
    fast = render("fan", 4.0, SR, seed=2, attributes={"spd": 1800, "mic": 1}, snr_db=None)
    assert peak_hz(fast) / peak_hz(slow) == pytest.approx(1.5, rel=0.03)


def test_background_level_follows_the_snr(clip_distance):
    clean = render("bearing", 2.0, SR, seed=1, snr_db=None)
    noisy = render("bearing", 2.0, SR, seed=1, snr_db=-10.0)
    mild = render("bearing", 2.0, SR, seed=1, snr_db=20.0)
    assert clip_distance(clean, mild) < clip_distance(clean, noisy)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"machine": "toaster"},
        {"anomaly": "cavitation"},  # not a fan fault
        {"attributes": {"colour": "red"}},
        {"attributes": {"spd": "fast"}},
        {"attributes": {"mic": "a_b"}},
        {"domain": "other"},
        {"severity": -0.1},
        {"severity": float("nan")},
        {"seconds": 0.0},
        {"seed": -1},
        {"sample_rate": 4000},
        {"snr_db": float("inf")},
    ],
)
def test_bad_arguments_raise_input_error(kwargs):
    args = {"machine": "fan", "seconds": 0.2, "sample_rate": SR, "seed": 0} | kwargs
    machine, seconds, sr = args.pop("machine"), args.pop("seconds"), args.pop("sample_rate")
    with pytest.raises(InputError):
        render(machine, seconds, sr, **args)


@pytest.mark.parametrize(("kind", "impacts_per_order"), [("outer_race", 1), ("ball", 2)])
def test_envelope_spectrum_of_a_bearing_defect_peaks_at_its_defect_frequency(
    kind, impacts_per_order
):
    # the diagnostic a vibration analyst runs: band-pass around the housing resonances,
    # take the envelope, find its strongest periodicity
    from edgeasd.synth.faults import bearing_orders
    from edgeasd.synth.spec import Clip

    shaft_hz = 12.0
    orders = bearing_orders(Clip("bearing", 0, 2, SR, {}, None, 1.0, 0))
    x = render(
        "bearing", 4.0, SR, seed=1, attributes={"vel": shaft_hz, "loc": "A"},
        anomaly=kind, severity=2.0, snr_db=None,
    ).astype(np.float64)  # fmt: skip
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1 / SR)
    spec[(f < 2000) | (f > 7000)] = 0
    envelope = np.abs(np.fft.irfft(spec, n=x.size))
    modulation = np.abs(np.fft.rfft((envelope - envelope.mean()) * np.hanning(x.size)))
    band = (f > 15) & (f < 300)
    peak = f[band][np.argmax(modulation[band])]
    expected = impacts_per_order * orders[kind] * shaft_hz
    assert peak == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("machine", ["fan", "valve", "toy_train"])
def test_each_section_is_another_physical_unit(machine, clip_distance):
    attrs = _first_source(machine)
    a, b = (render(machine, 2.0, SR, seed=s, attributes=attrs) for s in (1, 2))
    other = render(machine, 2.0, SR, seed=1, attributes=attrs, section=1)
    assert clip_distance(a, other) > 1.5 * clip_distance(a, b)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("machine", MACHINES)
def test_tiny_clips_and_other_sample_rates_render_cleanly(machine):
    kinds = list(MACHINE_TYPES[machine].anomalies)
    for sr, seconds, anomaly in [
        (8000, 0.002, None),
        (44100, 0.2, kinds[0]),
        (16000, 0.0003, kinds[-1]),
    ]:
        x = render(machine, seconds, sr, seed=1, anomaly=anomaly, severity=3.0, domain="target")
        assert x.shape == (round(seconds * sr),) and np.all(np.isfinite(x))
        assert np.max(np.abs(x)) <= 0.99
