"""File and demo sources, the source factory."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeasd.audio.demo import DemoSource
from edgeasd.audio.factory import check_source, make_source
from edgeasd.audio.io import read_audio, write_audio
from edgeasd.audio.quality import assess
from edgeasd.audio.sources import AudioBlock, FileSource, Source
from edgeasd.audio.windower import Windower
from edgeasd.errors import AudioFileError, ConfigError, InputError


def _tone_file(path, seconds, sr, channels=1, freq=440.0):
    t = np.arange(round(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    write_audio(path, np.repeat(x[:, None], channels, axis=1) if channels > 1 else x, sr)
    return path


def test_directory_in_name_order_resampled_with_segments(tmp_path, shared_data):
    mimii = shared_data / "mimii" / "pump" / "id_02" / "normal" / "00000000.wav"
    (tmp_path / "b_mimii.wav").write_bytes(mimii.read_bytes())  # 8 ch 16 kHz, 10 s
    _tone_file(tmp_path / "a_tone.flac", 1.5, 44100, channels=2)
    (tmp_path / "notes.txt").write_text("not audio, not picked up")
    with FileSource(tmp_path, 16000, block_seconds=0.5) as source:
        assert isinstance(source, Source)
        blocks = list(source.blocks())
        stats = source.stats()
    names = [b.source.rsplit("/", 1)[-1] for b in blocks]
    assert names[0] == "a_tone.flac" and names[-1] == "b_mimii.wav"
    assert [b.new_segment for b in blocks].count(True) == 2
    assert blocks[names.index("b_mimii.wav")].new_segment
    assert all(b.samples.dtype == np.float32 and b.samples.size <= 8000 for b in blocks)
    tone = np.concatenate([b.samples for b, n in zip(blocks, names, strict=True) if n[0] == "a"])
    mim = np.concatenate([b.samples for b, n in zip(blocks, names, strict=True) if n[0] == "b"])
    np.testing.assert_allclose(tone, read_audio(tmp_path / "a_tone.flac", 16000).samples, atol=1e-6)
    np.testing.assert_allclose(mim, read_audio(mimii).samples, atol=1e-6)
    times = np.array([b.time for b in blocks])
    sizes = np.array([b.samples.size for b in blocks])
    np.testing.assert_allclose(np.diff(times), sizes[:-1] / 16000, atol=1e-6)
    assert stats["frames"] == sizes.sum() and stats["files"] == 2 and stats["overflows"] == 0


def test_windows_never_span_two_files(tmp_path):
    _tone_file(tmp_path / "1.wav", 1.5, 16000, freq=200)
    _tone_file(tmp_path / "2.wav", 1.5, 16000, freq=3000)
    w = Windower(16000, 1.0, 0.25)
    windows = [win for b in FileSource(tmp_path, 16000).blocks() for win in w.push(b)]
    assert len(windows) == 2 * 3  # starts 0, .25, .5 in each file
    assert windows[2].start_time < windows[3].start_time


def test_realtime_pace_and_loop(tmp_path):
    path = _tone_file(tmp_path / "x.wav", 0.1, 16000)
    with FileSource(path, 16000, realtime=True, loop=True, block_seconds=0.05) as source:
        start = time.monotonic()
        got = 0
        for block in source.blocks():
            got += block.samples.size
            if got >= 0.4 * 16000:
                break
        elapsed = time.monotonic() - start
    assert got == 0.4 * 16000  # four passes of a 0.1 s file
    assert elapsed >= 0.38


def test_fast_mode_is_not_paced(tmp_path):
    path = _tone_file(tmp_path / "x.wav", 3.0, 16000)
    start = time.monotonic()
    assert sum(b.samples.size for b in FileSource(path, 16000).blocks()) == 48000
    assert time.monotonic() - start < 2.5


def test_close_stops_iteration(tmp_path):
    path = _tone_file(tmp_path / "x.wav", 1.0, 16000)
    source = FileSource(path, 16000, loop=True, block_seconds=0.1)
    n = 0
    for _ in source.blocks():
        n += 1
        if n == 25:
            source.close()
    assert n == 25


def test_bad_paths(tmp_path):
    with pytest.raises(AudioFileError, match="not found"):
        FileSource(tmp_path / "missing", 16000)
    with pytest.raises(AudioFileError, match="no WAV or FLAC"):
        FileSource(tmp_path, 16000)
    (tmp_path / "bad.wav").write_text("text")
    source = FileSource(tmp_path, 16000)
    with pytest.raises(AudioFileError, match=r"bad\.wav"):
        list(source.blocks())


def test_make_source_file_and_errors(tmp_path):
    path = _tone_file(tmp_path / "x.wav", 0.5, 8000)
    source = make_source("file", {"path": str(path), "realtime": None}, 16000)
    assert source.sample_rate == 16000
    assert sum(b.samples.size for b in source.blocks()) == 8000
    with pytest.raises(ConfigError, match="kind 'radio'"):
        make_source("radio", {}, 16000)
    with pytest.raises(ConfigError, match="bogus") as info:
        make_source("file", {"path": str(path), "bogus": 1}, 16000)
    assert "realtime" in info.value.help
    with pytest.raises(ConfigError, match=r"source\.path"):
        make_source("file", {}, 16000)


def test_check_source_refuses_what_a_file_source_would_refuse(tmp_path):
    check_source("file", {"path": str(_tone_file(tmp_path / "x.wav", 0.5, 8000))})
    check_source("file", {"path": str(tmp_path)})  # a folder holding a WAV
    check_source("demo", {"realtime": True})
    check_source("microphone", {"device": "nothing like it"})  # doctor opens devices
    for missing in (tmp_path / "nope.wav", tmp_path / "empty"):
        if missing.name == "empty":
            missing.mkdir()
        with pytest.raises(ConfigError, match=r"^source\.path: ") as info:
            check_source("file", {"path": str(missing), "loop": None})
        assert str(missing) in info.value.message
        assert "source.kind: demo" in info.value.help


def test_demo_normal_then_fault(tmp_path):
    demo = make_source(
        "demo",
        {"seconds_normal": 3.0, "seconds_anomalous": 2.0, "seconds_after": 2.0, "seed": 7},
        16000,
    )
    assert isinstance(demo, DemoSource)
    demo.clip_frames = 16000  # one-second clips keep the test fast
    w = Windower(16000, 1.0)
    windows = [win for b in demo.blocks() for win in w.push(b)]
    assert len(windows) == 7
    flags = [demo.is_anomalous(win.start_time, 1.0) for win in windows]
    assert flags == [False, False, False, True, True, False, False]  # the fault, then repaired
    assert all(assess(win.samples).ok for win in windows)
    stats = demo.stats()
    assert stats["frames"] == 7 * 16000 and stats["anomaly_starts_at"] == 3.0
    assert stats["anomaly_start_time"] == pytest.approx(windows[3].start_time)


def test_demo_uses_the_simulator_with_a_fixed_machine():
    from edgeasd.synth import render

    demo = DemoSource(
        16000, 1.0, 1.0, 0.0, seed=3, clip_seconds=1.0, machine="pump", anomaly="cavitation"
    )
    x = np.concatenate([b.samples for b in demo.blocks()])
    attrs = demo.attributes
    normal = render("pump", 1.0, 16000, seed=3, attributes=attrs)
    faulty = render("pump", 1.0, 16000, seed=4, attributes=attrs, anomaly="cavitation")
    np.testing.assert_array_equal(x, np.concatenate([normal, faulty]))


def test_demo_bad_arguments():
    with pytest.raises(InputError, match="machine"):
        DemoSource(16000, machine="toaster")
    with pytest.raises(InputError, match="anomaly"):
        DemoSource(16000, anomaly="meltdown")
    with pytest.raises(InputError):
        DemoSource(16000, seconds_normal=-1)
    with pytest.raises(InputError):
        DemoSource(16000, seconds_normal=0, seconds_anomalous=0)


def test_audio_block_defaults():
    b = AudioBlock(np.zeros(3, np.float32), 1.0)
    assert b.new_segment is False and b.source is None
