"""Reading and writing audio files: real DCASE and MIMII clips, bad files, crash safety."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from edgeasd.audio import io as audio_io
from edgeasd.audio.io import iter_audio, list_audio_files, read_audio, write_audio
from edgeasd.audio.resample import resample
from edgeasd.errors import AudioFileError, EdgeasdError, InputError

MIMII_CLIP = "mimii/fan/id_02/normal/00000000.wav"


def test_dcase_clip_reads_as_mono_16k(shared_data):
    path = next((shared_data / "dcase2023-t2" / "fan" / "train").glob("*.wav"))
    audio = read_audio(path)
    raw, sr = sf.read(path, dtype="float32")
    assert audio.sample_rate == sr == 16000
    assert audio.source_channels == 1
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    np.testing.assert_array_equal(audio.samples, raw)
    assert audio.duration == pytest.approx(raw.size / sr)


def test_mimii_extensible_8_channels_mix_and_pick(shared_data):
    path = shared_data / MIMII_CLIP
    raw, _ = sf.read(path, dtype="float32", always_2d=True)
    assert raw.shape == (160000, 8) and sf.info(path).format == "WAVEX"
    mixed = read_audio(path)
    assert mixed.source_channels == 8 and mixed.samples.shape == (160000,)
    np.testing.assert_allclose(mixed.samples, raw.mean(axis=1), atol=1e-7)
    third = read_audio(path, channel=3)
    np.testing.assert_array_equal(third.samples, raw[:, 3])
    with pytest.raises(InputError, match="channel 8 does not exist"):
        read_audio(path, channel=8)
    with pytest.raises(InputError, match="'mix' or a 0-based"):
        read_audio(path, channel="left")


def test_resampled_read_matches_resample(shared_data):
    path = shared_data / MIMII_CLIP
    audio = read_audio(path, sample_rate=48000)
    assert audio.sample_rate == 48000 and audio.samples.size == 480000
    np.testing.assert_allclose(audio.samples, resample(read_audio(path).samples, 16000, 48000))
    assert audio.duration == pytest.approx(10.0)


def test_iter_audio_equals_read_audio(tmp_path, shared_data):
    path = shared_data / MIMII_CLIP
    streamed = np.concatenate(list(iter_audio(path, 22050, block_frames=7777)))
    whole = read_audio(path, sample_rate=22050).samples
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def _check_clear(exc: EdgeasdError, *words: str) -> None:
    assert exc.help, "every operator-facing error carries a hint"
    for word in words:
        assert word in exc.message


def test_missing_and_directory(tmp_path):
    with pytest.raises(AudioFileError) as info:
        read_audio(tmp_path / "nope.wav")
    _check_clear(info.value, "not found", "nope.wav")
    with pytest.raises(AudioFileError) as info:
        read_audio(tmp_path)
    _check_clear(info.value, "directory")


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioFileError) as info:
        read_audio(path)
    _check_clear(info.value, "empty", "empty.wav")


def test_header_only_wav_has_no_samples(tmp_path):
    path = tmp_path / "header.wav"
    with sf.SoundFile(path, "w", 16000, 1, format="WAV"):
        pass
    with pytest.raises(AudioFileError) as info:
        read_audio(path)
    _check_clear(info.value, "no samples")


def test_text_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not a recording\n" * 20)
    with pytest.raises(AudioFileError) as info:
        read_audio(path)
    _check_clear(info.value, "cannot read", "notes.wav")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_mimii_wav(tmp_path, shared_data, keep):
    data = (shared_data / MIMII_CLIP).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(AudioFileError) as info:
        read_audio(path)
    _check_clear(info.value, "truncated", "cut.wav")


def test_truncated_header_and_flac(tmp_path, shared_data):
    data = (shared_data / MIMII_CLIP).read_bytes()
    (tmp_path / "h.wav").write_bytes(data[:30])
    with pytest.raises(AudioFileError):
        read_audio(tmp_path / "h.wav")
    flac = write_audio(tmp_path / "a.flac", np.full(16000, 0.1, np.float32), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(AudioFileError):
        read_audio(cut)


def test_streamed_wav_placeholder_size_is_accepted(tmp_path):
    """arecord writing to a pipe leaves a huge placeholder data size: not truncation."""
    path = tmp_path / "s.wav"
    write_audio(path, np.linspace(-0.5, 0.5, 1600, dtype=np.float32), 16000)
    raw = bytearray(path.read_bytes())
    pos = raw.index(b"data") + 4
    raw[pos : pos + 4] = (0x7FFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    assert read_audio(path).samples.size == 1600


def test_nan_float_wav(tmp_path):
    path = tmp_path / "nan.wav"
    x = np.zeros(100, np.float32)
    x[50] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="NaN"):
        read_audio(path)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_roundtrip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(8000) * 0.2).clip(-1, 1).astype(np.float32)
    path = write_audio(tmp_path / f"x{suffix}", x, 16000)
    back = read_audio(path)
    assert back.sample_rate == 16000
    np.testing.assert_allclose(back.samples, x, atol=1 / 32768 + 1e-7)  # 16-bit
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp leftovers


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "keep.flac", np.full(800, 0.25, np.float32), 8000)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audio_io.sf, "write", broken)
    with pytest.raises(AudioFileError, match="cannot write"):
        write_audio(path, np.zeros(800, np.float32), 8000)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.flac"]


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(AudioFileError, match="cannot write"):
        write_audio(tmp_path / "nope" / "a.wav", np.zeros(10, np.float32), 16000)


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(InputError):
        write_audio(tmp_path / "a.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError):
        write_audio(tmp_path / "a.wav", np.array([0.0, np.inf]), 16000)
    with pytest.raises(InputError, match=r"suffix|format"):
        write_audio(tmp_path / "a.mp3", np.zeros(10), 16000)


def test_list_audio_files_sorted_and_filtered(tmp_path):
    for name in ("b.WAV", "a.flac", "c.txt", "d.wav"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.wav").mkdir()
    assert [p.name for p in list_audio_files(tmp_path)] == ["a.flac", "b.WAV", "d.wav"]
