"""Signal quality: levels against plain formulas, and each status on real and made-up audio."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgeasd.audio.io import read_audio
from edgeasd.audio.quality import (
    CLIP_FRACTION,
    DROPOUT_SAMPLES,
    FLOOR_DBFS,
    SILENCE_DBFS,
    assess,
    longest_zero_run,
)
from edgeasd.errors import InputError

SR = 16000


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, st.integers(1, 400), elements=st.floats(-1, 1, width=32)))
def test_measures_match_plain_formulas(x):
    q = assess(x)
    values = [float(v) for v in x]
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    expected_db = 10 * math.log10(var) if var > 0 else FLOOR_DBFS
    assert q.rms_dbfs == pytest.approx(max(expected_db, FLOOR_DBFS), abs=1e-6)
    assert q.peak == max(abs(v) for v in values)
    assert q.clip_fraction == sum(abs(v) >= 0.999 for v in values) / len(values)
    assert q.dc_offset == pytest.approx(mean, abs=1e-9)
    assert q.status in ("ok", "silence", "clipping", "dead", "dropout")  # finite: never nan


def _sine(amplitude: float, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_full_scale_sine_reads_minus_3_dbfs_and_dc_is_ignored():
    q = assess(_sine(1.0) * 0.9 + 0.05)
    assert q.rms_dbfs == pytest.approx(20 * np.log10(0.9 / np.sqrt(2)), abs=0.01)
    assert q.dc_offset == pytest.approx(0.05, abs=1e-4)
    assert q.status == "ok"


def test_real_machine_recordings_are_ok(shared_data):
    for path in sorted((shared_data / "dcase2023-t2").rglob("*.wav"))[::4]:
        q = assess(read_audio(path).samples)
        assert q.status == "ok", (path.name, q)
        assert SILENCE_DBFS + 20 < q.rms_dbfs < -20


@pytest.mark.parametrize(
    ("signal", "status"),
    [
        (np.zeros(SR, np.float32), "dead"),  # digital zeros
        (np.full(SR, 0.3, np.float32), "dead"),  # stuck DC value
        (np.full(SR, -1.0, np.float32), "dead"),  # stuck at a rail, not "clipping"
        (np.tile(np.float32([0.0, 1 / 32768]), SR // 2), "dead"),  # one-LSB toggling
        (_sine(1e-4), "silence"),  # -83 dBFS: above dead, below the floor
        (np.clip(_sine(3.0), -1, 1), "clipping"),
        (_sine(0.05), "ok"),
    ],
)
def test_statuses(signal, status):
    assert assess(signal).status == status


def test_thresholds_are_keyword_arguments():
    quiet = _sine(1e-3)  # about -63 dBFS
    assert assess(quiet).status == "ok"
    assert assess(quiet, silence_dbfs=-50.0).status == "silence"
    few = _sine(0.5)
    few[:10] = 1.0  # 10 clipped samples of 16000: 0.06 %
    assert assess(few).status == "ok"
    assert assess(few, clip_fraction=CLIP_FRACTION / 10).status == "clipping"
    assert assess(few, clip_level=0.4).status == "clipping"
    assert assess(_sine(1e-5), dead_range=1e-3).status == "dead"


def test_result_is_json_ready():
    q = assess(np.zeros(10, np.float32))
    text = json.dumps(q.as_dict(), allow_nan=False)
    assert json.loads(text)["rms_dbfs"] == FLOOR_DBFS
    assert not q.ok and assess(_sine(0.1)).ok


def test_bad_input():
    for bad in (np.zeros(0), np.zeros((2, 2))):
        with pytest.raises(InputError):
            assess(bad)


def test_non_finite_samples_are_a_status_not_an_error():
    """A NaN from a broken driver must not stop the daemon: the window has no signal."""
    x = _sine(0.1)
    x[5] = np.nan
    q = assess(x)
    assert q.status == "nan" and not q.scorable and not q.ok
    assert q.peak == pytest.approx(0.1, abs=1e-3)  # levels of the finite samples
    json.dumps(q.as_dict(), allow_nan=False)
    assert assess(np.array([np.inf, -np.inf])).status == "nan"
    burst = _sine(0.3)
    burst[100:1700] = np.nan  # 0.1 s burst in a float stream
    assert assess(burst).status == "nan"


def test_clipped_windows_are_scorable_but_not_enrollable():
    q = assess(np.clip(_sine(3.0), -1, 1))
    assert q.clipped and q.scorable and not q.ok
    for silent in (np.zeros(SR, np.float32), _sine(1e-4)):
        assert not assess(silent).scorable


def test_a_run_of_digital_zeros_is_a_dropout_and_a_shorter_one_is_not(shared_data):
    path = sorted((shared_data / "dcase2023-t2").rglob("*.wav"))[0]
    x = read_audio(path, sample_rate=SR).samples[: 10 * SR].copy()
    assert assess(x).status == "ok"
    short = x.copy()
    short[SR : SR + DROPOUT_SAMPLES - 1] = 0.0
    assert assess(short).status == "ok"
    x[SR : SR + SR // 10] = 0.0  # 0.1 s lost
    assert longest_zero_run(x) == SR // 10
    q = assess(x)
    assert q.status == "dropout" and not q.scorable and not q.ok
