"""Within-condition variation between recordings (edgeasd.synth.drift)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeasd.errors import InputError
from edgeasd.synth import render
from edgeasd.synth.drift import WARMUP_SLOW, Recording, drift_at, timeline
from edgeasd.synth.spec import Clip

SR = 16000
FAN = {"spd": 1500, "mic": 1}


def _clip() -> Clip:
    return Clip("fan", 0, SR, SR, {"spd": "1500", "mic": "1"}, None, 1.0, 0)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    f = np.fft.rfftfreq(x.size, 1 / SR)
    band = (f > 60) & (f < 1500)
    return float(f[band][np.argmax(spec[band])])


def test_same_recording_same_samples_and_another_time_sounds_different(clip_distance):
    rec = Recording(5000.0, 1, 3600.0)
    a = render("pump", 2.0, SR, seed=3, recording=rec)
    np.testing.assert_array_equal(a, render("pump", 2.0, SR, seed=3, recording=rec))
    later = render("pump", 2.0, SR, seed=3, recording=Recording(9000.0, 1, 3600.0))
    assert not np.array_equal(a, later)
    assert clip_distance(a, later) > 0


def test_warm_up_decays_and_slows_the_machine_just_after_a_start():
    # the same moment (same slow wander), just started vs running for an hour
    cold = drift_at(_clip(), "source", Recording(3600.0, 1, 3600.0), 3)
    warm = drift_at(_clip(), "source", Recording(3600.0, 1, 0.0), 3)
    assert cold.warm == 1.0 and warm.warm < 0.01
    assert cold.operating - warm.operating == pytest.approx(-WARMUP_SLOW * (1 - warm.warm))


def test_the_fan_tone_follows_the_drifting_speed():
    clean = render("fan", 4.0, SR, seed=2, attributes=FAN, snr_db=None)
    for t in (60.0, 2400.0, 7200.0):
        rec = Recording(t)
        d = drift_at(_clip(), "source", rec, 3)
        x = render("fan", 4.0, SR, seed=2, attributes=FAN, snr_db=None, recording=rec)
        assert _peak_hz(x) / _peak_hz(clean) == pytest.approx(1 + d.operating, abs=0.004)


def test_microphone_re_seating_changes_gain_and_spectrum_per_session():
    a = drift_at(_clip(), "source", Recording(100.0, 0), 3)
    b = drift_at(_clip(), "source", Recording(100.0, 1), 3)
    assert a.gain_db != b.gain_db
    x = render("fan", 2.0, SR, seed=1, attributes=FAN, recording=Recording(100.0, 0))
    y = render("fan", 2.0, SR, seed=1, attributes=FAN, recording=Recording(100.0, 1))
    ratio_db = 20 * np.log10(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)))
    assert ratio_db == pytest.approx(b.gain_db - a.gain_db, abs=0.5)


def test_background_machines_switch_but_one_stays_on():
    states = {drift_at(_clip(), "target", Recording(h * 1800.0), 4).tones_on for h in range(12)}
    assert len(states) > 1 and all(any(s) for s in states)


def test_timeline_and_bad_recordings():
    recs = timeline(2, 3, spacing_s=300.0, session_gap_s=3600.0, first_s=60.0)
    assert [r.time_s for r in recs] == [60.0, 360.0, 660.0, 3660.0, 3960.0, 4260.0]
    assert [r.session for r in recs] == [0, 0, 0, 1, 1, 1]
    with pytest.raises(InputError):
        Recording(10.0, 0, 20.0)
    with pytest.raises(InputError):
        Recording(float("nan"))
    with pytest.raises(InputError):
        Recording(10.0, -1)
