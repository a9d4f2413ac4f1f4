"""The real capture path: sounddevice → PortAudio → ALSA, fed by virtual ALSA devices.

Every capture runs in a subprocess (``tests/support/capture.py``) because ALSA reads
``ALSA_CONFIG_PATH`` when sounddevice is first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support.alsa_feed import AlsaFeed  # tests/ is on sys.path (rootdir conftest)

from edgeasd.audio import devices
from edgeasd.audio.resample import resample
from edgeasd.errors import DeviceError

CAPTURE = Path(__file__).resolve().parents[1] / "support" / "capture.py"


def _portaudio_available() -> bool:
    """sounddevice and PortAudio import (checked in a subprocess: never import it here)."""
    probe = "import sounddevice"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _portaudio_available() or not Path("/usr/share/alsa/alsa.conf").exists(),
    reason="PortAudio (apt-get install libportaudio2) or ALSA configuration missing",
)


def capture(env: dict, *args: str, timeout: float = 60.0) -> dict:
    """Run the capture script with ``env`` and return its JSON result, plus
    ``returncode`` and ``wall`` (seconds until the process ended; a hung exit is killed
    after ``timeout`` and reported as ``returncode`` -9)."""
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CAPTURE), *args], env=env, stdout=subprocess.PIPE, stderr=err
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        err.seek(0)
        stderr = err.read()
    lines = out.decode().strip().splitlines()
    assert lines, f"capture printed nothing; stderr: {stderr[-2000:]}"
    return json.loads(lines[-1]) | {"returncode": proc.returncode, "wall": time.monotonic() - start}


def _noise(n, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) if channels == 1 else (n, channels)
    return (rng.standard_normal(shape) * 0.1).clip(-1, 1).astype(np.float32)


def test_captures_exactly_the_fed_samples(tmp_path):
    x = _noise(3 * 16000)
    out = tmp_path / "got.npy"
    with AlsaFeed(tmp_path, x, rate=16000) as feed:
        result = capture(
            feed.env, "--device", feed.device_name, "--seconds", "3", "--out", str(out)
        )
    assert result["ok"], result
    got = np.load(out)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[: x.size], x)  # byte-exact at the model rate
    stats = result["stats"]
    assert stats["device"] == "feed" and stats["capture_rate"] == 16000
    assert stats["capture_channels"] == 1
    assert stats["overflows"] == 0 and stats["frames"] >= x.size
    assert result["new_segments"] == 1  # the first block starts the stream


def test_48k_stereo_device_is_downmixed_and_resampled(tmp_path):
    x = _noise(2 * 48000, channels=2, seed=1)
    out = tmp_path / "got.npy"
    with AlsaFeed(tmp_path, x, rate=48000) as feed:
        result = capture(
            feed.env, "--device", "feed", "--seconds", "2", "--capture-channels", "2",
            "--out", str(out),
        )  # fmt: skip
    assert result["ok"], result
    assert result["stats"]["capture_rate"] == 48000  # the device's default rate
    got = np.load(out)
    # the feed continues with silence, which is what the one-shot path pads with
    expected = resample(x.mean(axis=1), 48000, 16000)
    np.testing.assert_allclose(got[: expected.size], expected, atol=1e-6)


def test_one_channel_of_a_stereo_device(tmp_path):
    x = _noise(48000, channels=2, seed=2)
    out = tmp_path / "got.npy"
    with AlsaFeed(tmp_path, x, rate=16000) as feed:
        result = capture(
            feed.env, "--device", "feed", "--seconds", "3", "--channels", "1",
            "--capture-channels", "2", "--out", str(out),
        )  # fmt: skip
    assert result["ok"], result
    np.testing.assert_array_equal(np.load(out)[:48000], x[:, 1])


def test_realtime_feed_paces_capture_and_closes_promptly(tmp_path):
    x = _noise(16000, seed=3)
    out = tmp_path / "got.npy"
    with AlsaFeed(tmp_path, x, rate=16000, realtime=True) as feed:
        result = capture(feed.env, "--device", "feed", "--seconds", "2.5", "--out", str(out))
    assert result["ok"], result
    # 2.5 s of audio take about that long (the FIFO may hold up to 1 s of backlog)
    assert 1.2 < result["elapsed"] < 20
    assert result["close_seconds"] < 2.5
    got = np.load(out)
    np.testing.assert_array_equal(got[:16000], x)
    assert np.all(got[16000:40000] == 0)  # then the feed's silence


def test_stall_raises_device_error_and_the_process_can_exit(tmp_path):
    x = _noise(8000, seed=4)
    with AlsaFeed(tmp_path, x, rate=16000, realtime=True, keep_alive=False) as feed:
        result = capture(feed.env, "--device", "feed", "--seconds", "10", "--stall", "1.0")
    assert not result["ok"]
    assert result["error"] == "DeviceError" and "no audio from 'feed'" in result["message"]
    # raised about one stall limit after the audio (at most ~1.5 s with backlog) ran out,
    # and closing the wedged stream gave up after its 2 s limit instead of hanging
    assert result["elapsed"] < 8.0
    # the wedged stream does not keep the process from exiting
    assert result["returncode"] == 0


def test_record_and_list_devices_for_doctor(alsa_feed):
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)
    feed = alsa_feed(np.stack([tone, tone], axis=1), rate=48000)
    code = (
        "import json; from edgeasd.audio.microphone import list_devices, record\n"
        "r = record(0.5, 'feed', 16000, capture_channels=2)\n"
        "print(json.dumps({'n': r.samples.size, 'q': r.quality.as_dict(), 'dev': r.device,"
        " 'devices': [d.name for d in list_devices()]}))"
    )
    proc = feed.run_python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n"] == 8000 and out["dev"] == "feed"
    assert out["q"]["status"] == "ok"
    assert out["q"]["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert {"feed", "feed_raw"} <= set(out["devices"])


def test_unknown_or_ambiguous_device_lists_the_available_ones(tmp_path):
    with AlsaFeed(tmp_path, _noise(1600)) as feed:
        unknown = capture(feed.env, "--device", "USB Mic")
        ambiguous = capture(feed.env, "--device", "fee")  # feed and feed_raw
    for result in (unknown, ambiguous):
        assert not result["ok"] and result["error"] == "DeviceError"
        assert "'feed'" in result["help"] and "source.device" in result["help"]
    assert "'USB Mic' not found" in unknown["message"]
    assert "'fee' matches several devices" in ambiguous["message"]


def _sound_cards() -> bool:
    cards = Path("/proc/asound/cards")
    return cards.exists() and "no soundcards" not in cards.read_text()


@pytest.mark.skipif(_sound_cards(), reason="this machine has sound hardware")
def test_no_device_at_all():
    """No sound hardware and no virtual devices: the default input cannot be opened."""
    env = dict(os.environ, ALSA_CONFIG_PATH="/usr/share/alsa/alsa.conf")
    result = capture(env, "--seconds", "0.1")
    assert not result["ok"] and result["error"] == "DeviceError"
    assert "default audio input" in result["message"]
    assert "no input devices" in result["help"]


def test_missing_portaudio_becomes_device_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(DeviceError) as info:
        devices.list_devices()
    assert "libportaudio2" in info.value.help


def test_portaudio_oserror_becomes_device_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DeviceError, match="PortAudio library not found") as info:
        devices.resolve_device("USB")
    assert "apt-get install libportaudio2" in info.value.help


def test_device_index_is_refused():
    with pytest.raises(DeviceError) as info:
        devices.resolve_device(3)  # type: ignore[arg-type]
    assert "name" in info.value.help


def test_overflow_flags_reach_the_stats():
    """The stream's callback is the ring's: PortAudio's overflow flags are counted."""
    from edgeasd.audio.microphone import MicrophoneSource
    from edgeasd.audio.ring import CaptureRing

    source = MicrophoneSource.__new__(MicrophoneSource)  # no device needed for the wiring
    source.info = devices.DeviceInfo("fake", "ALSA", 0, 2, 48000.0, False)
    source.capture_rate, source.capture_channels, source._frames_out = 48000, 2, 0
    source.ring = CaptureRing(4800, 2, 48000)
    for flag in (True, False, True):
        source.ring.callback(
            np.zeros((480, 2), np.float32), 480, None, SimpleNamespace(input_overflow=flag)
        )
    stats = source.stats()
    assert stats["overflows"] == 2 and stats["captured"] == 1440 and stats["callbacks"] == 3
