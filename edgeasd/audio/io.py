"""Reading and writing audio files (WAV, FLAC and whatever else libsndfile reads).

Everything that leaves this module is ``float32`` mono in [-1, 1] at the requested rate.
Files with any sample rate and channel count are accepted (including 8-channel
WAVE_FORMAT_EXTENSIBLE recordings such as the MIMII clips); channels are averaged
(``channel="mix"``) or one of them is picked (``channel=<index>``).

Every way a file can be unusable (missing, empty, truncated, not audio, NaN samples, a
channel that does not exist) raises :class:`edgeasd.errors.AudioFileError` with a message
naming the file and a hint.

One concept over ~450 lines: audio files in and out through libsndfile. Reading (open, header
and truncation checks, streamed iteration) and the atomic write share the format knowledge
(:data:`AUDIO_SUFFIXES`, the channel rules, libsndfile's error messages turned into
:class:`~edgeasd.errors.AudioFileError`); a split would spread one format over two modules.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

from edgeasd.atomic import replacing
from edgeasd.audio.resample import StreamResampler, resample
from edgeasd.errors import AudioFileError, InputError
from edgeasd.filemode import AUDIO_MODE
from edgeasd.infile import open_regular

#: File name suffixes a directory scan picks up (lower case).
AUDIO_SUFFIXES = (".wav", ".flac")

#: How a file's channels become one: ``"mix"`` (mean) or a 0-based channel index.
Channel = str | int


@dataclass(frozen=True)
class Audio:
    """A decoded mono signal.

    Attributes
    ----------
    samples : np.ndarray
        Shape ``(n,)``, ``float32`` in [-1, 1].
    sample_rate : int
        Rate of ``samples`` in Hz (the requested rate when resampled).
    source_channels : int
        Channel count of the file before downmix or selection.
    duration : float
        ``n / sample_rate`` in seconds.
    """

    samples: np.ndarray
    sample_rate: int
    source_channels: int
    duration: float


_READ_HELP = "check that the file is a complete WAV or FLAC recording (e.g. `soxi FILE`)"


def check_channel(channel: Channel, n_channels: int, where: str) -> None:
    """Validate a channel selector against a channel count.

    Parameters
    ----------
    channel : str or int
        ``"mix"`` or a 0-based channel index.
    n_channels : int
        Channels available.
    where : str
        The file or device name, for the error message.

    Raises
    ------
    InputError
        If ``channel`` is neither ``"mix"`` nor an index below ``n_channels``.
    """
    if channel == "mix":
        return
    if isinstance(channel, bool) or not isinstance(channel, int | np.integer):
        raise InputError(
            f"channel must be 'mix' or a 0-based channel index, not {channel!r}",
            help="use channel: mix to average all channels, or an integer index",
        )
    if not 0 <= channel < n_channels:
        raise InputError(
            f"channel {channel} does not exist in {where} ({n_channels} channels)",
            help=f"use an index from 0 to {n_channels - 1}, or 'mix'",
        )


def to_mono(frames: np.ndarray, channel: Channel) -> np.ndarray:
    """Downmix or select one channel of a frame block.

    Parameters
    ----------
    frames : np.ndarray
        Shape ``(n, channels)`` or ``(n,)``.
    channel : str or int
        ``"mix"`` (mean of the channels) or a channel index (assumed valid).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, ``float32``; a view when nothing needs computing.
    """
    if frames.ndim == 1:
        return frames.astype(np.float32, copy=False)
    if channel == "mix":
        if frames.shape[1] == 1:
            return frames[:, 0].astype(np.float32, copy=False)
        return frames.mean(axis=1, dtype=np.float32)
    return frames[:, int(channel)].astype(np.float32, copy=False)


#: Lowest sample rate accepted: 8 kHz is telephone audio, the lowest rate a microphone or
#: recorder of machine sound uses; below it a "recording" is a mislabelled or corrupt file
#: (1 Hz and 7 Hz files were accepted before, issue 10).
MIN_SAMPLE_RATE = 8000
#: Highest sample rate accepted: 768 kHz is the highest rate of audio interfaces and of
#: the WAV files libsndfile writes; beyond it the header is corrupt.
MAX_SAMPLE_RATE = 768000

#: An audio file: a path, or an open binary file object (e.g. ``os.fdopen(fd, "rb")`` of a
#: descriptor received over the control socket).
AudioInput = str | os.PathLike | BinaryIO


def input_name(source: AudioInput, name: str | None = None) -> str:
    """How messages name an audio input: ``name``, the path, or the file object's name."""
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return str(source)
    return str(getattr(source, "name", "<audio stream>"))


def open_audio(
    path: AudioInput, name: str | None = None, max_seconds: float | None = None
) -> sf.SoundFile:
    """Open an audio file for reading, turning every failure into ``AudioFileError``.

    Parameters
    ----------
    path : path-like or binary file object
        The file, or an open binary file object (read from its current position; the
        caller keeps ownership of it).
    name : str, optional
        How messages name the file (default: the path or the object's ``name``).
    max_seconds : float, optional
        Refuse a file announcing more audio than this (checked from the header, before
        anything is read).

    Returns
    -------
    soundfile.SoundFile
        Open for reading; the caller closes it.

    Raises
    ------
    AudioFileError
        Missing, unreadable (permission denied), empty, not audio, truncated, a sample
        rate outside [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`], or longer than
        ``max_seconds``.
    """
    label = input_name(path, name)
    closefd = False
    if isinstance(path, str | os.PathLike):
        # a regular file only, opened without blocking (a FIFO hung `enroll`, issue 20)
        target: Any = open_regular(path, label)
        closefd = True
        if os.fstat(target).st_size == 0:
            os.close(target)
            raise AudioFileError(f"audio file is empty (0 bytes): {label}", help=_READ_HELP)
    else:  # an open file, e.g. a descriptor a client passed over the control socket
        try:
            size = os.fstat(path.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            size = None
        if size == 0:
            raise AudioFileError(f"audio file is empty (0 bytes): {label}", help=_READ_HELP)
        with contextlib.suppress(OSError, AttributeError, ValueError):
            path.seek(0)  # a passed descriptor shares its offset with the sender
        target = path
    try:
        f = _sound_file(target, closefd)
    except sf.LibsndfileError as exc:
        raise AudioFileError(
            f"cannot read {label} as audio: {exc.error_string}",
            help=_READ_HELP + "; supported are WAV and FLAC (any rate, any channel count)",
        ) from exc
    except PermissionError as exc:
        raise AudioFileError(f"permission denied reading {label}", help=_READ_HELP) from exc
    except (RuntimeError, OSError, TypeError) as exc:  # soundfile < 0.11 raises RuntimeError
        raise AudioFileError(f"cannot read {label} as audio: {exc}", help=_READ_HELP) from exc
    try:
        _check_header(f, label, max_seconds)
    except BaseException:
        f.close()
        raise
    return f


def _sound_file(target: Any, closefd: bool) -> sf.SoundFile:
    """``sf.SoundFile`` of a descriptor it then owns, or of a file object (kept open)."""
    if not closefd:
        return sf.SoundFile(target)
    try:
        return sf.SoundFile(target, closefd=True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(target)
        raise


def _check_header(f: sf.SoundFile, label: str, max_seconds: float | None) -> None:
    """Refuse what the header of an open file announces: bad rate, no or too much audio."""
    rate = int(f.samplerate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioFileError(
            f"{label} has a sample rate of {rate} Hz; audio must be between "
            f"{MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz",
            help="this is not a usable recording (or its header is corrupt): record or "
            "export it at 16 kHz or more",
        )
    if f.frames <= 0:
        raise AudioFileError(f"audio file {label} contains no samples", help=_READ_HELP)
    if max_seconds is not None and f.frames / rate > max_seconds:
        raise AudioFileError(
            f"{label} holds {f.frames / rate:.0f} s of audio, more than the {max_seconds:g} s "
            "one request may enroll (enrollment.max_request_seconds)",
            help="cut it into shorter files (e.g. `sox in.wav out.wav trim 0 3600`) and enroll "
            "them in several requests, or raise enrollment.max_request_seconds",
        )
    truncated = _wav_truncation(f)
    if truncated is not None:
        declared, present = truncated
        raise AudioFileError(
            f"{label} is truncated: its header announces {declared} bytes of audio, the file "
            f"holds {present}",
            help="copy the complete recording again; to keep what is there, rewrite it "
            "(e.g. `sox in.wav out.wav`)",
        )


#: A WAV ``data`` size this large or zero is a placeholder of a streamed recording
#: (``arecord`` to a pipe), not a promise of that much audio.
_STREAMED_WAV_SIZE = 0x7FFF0000
_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _wav_truncation(f: sf.SoundFile) -> tuple[int, int] | None:
    """(declared, present) data bytes of a truncated WAV file, else None.

    libsndfile silently reads what a cut-off WAV holds; its header log tells the
    announced and the present size of the ``data`` chunk.
    """
    if f.format not in ("WAV", "WAVEX", "RF64"):
        return None
    match = _DATA_SIZE.search(f.extra_info)
    if match is None:
        return None
    declared, present = int(match.group(1)), int(match.group(2))
    if declared == 0 or declared >= _STREAMED_WAV_SIZE or present >= declared:
        return None
    return declared, present


def _check_finite(block: np.ndarray, label: str) -> None:
    if not np.isfinite(block).all():
        raise AudioFileError(
            f"{label} contains NaN or infinite samples",
            help="re-export the recording as 16-bit PCM or clean float WAV",
        )


def _read_frames(f: sf.SoundFile, frames: int, label: str, finite: bool = True) -> np.ndarray:
    try:
        block = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, AssertionError) as exc:
        # soundfile asserts the frame count it got: a truncated FLAC raises AssertionError
        raise AudioFileError(f"{label} is corrupt or truncated ({exc!r})", help=_READ_HELP) from exc
    if finite:
        _check_finite(block, label)
    return block


def read_audio(
    path: AudioInput,
    sample_rate: int | None = None,
    channel: Channel = "mix",
    *,
    name: str | None = None,
) -> Audio:
    """Read a whole audio file as mono ``float32``.

    Parameters
    ----------
    path : path-like or binary file object
        WAV, FLAC or another format libsndfile reads; any rate and channel count.
    sample_rate : int, optional
        Resample to this rate (polyphase, anti-aliased); ``None`` keeps the file's rate.
    channel : "mix" or int
        Average all channels, or take one channel (0-based).
    name : str, optional
        How messages name the file.

    Returns
    -------
    Audio
        ``samples`` of shape ``(n,)``.

    Raises
    ------
    AudioFileError
        Missing, unreadable, empty, truncated, non-audio or NaN-containing file, or a
        sample rate outside [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`].
    InputError
        A channel index the file does not have, or a non-positive ``sample_rate``.
    """
    label = input_name(path, name)
    with open_audio(path, label) as f:
        check_channel(channel, f.channels, label)
        frames = _read_frames(f, -1, label)
        rate, n_channels = int(f.samplerate), int(f.channels)
    if frames.shape[0] == 0:
        raise AudioFileError(f"audio file {label} contains no samples", help=_READ_HELP)
    mono = to_mono(frames, channel)
    if sample_rate is not None and int(sample_rate) != rate:
        mono = resample(mono, rate, int(sample_rate))
        rate = int(sample_rate)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    return Audio(mono, rate, n_channels, mono.shape[0] / rate)


def iter_audio(
    path: AudioInput,
    sample_rate: int,
    channel: Channel = "mix",
    block_frames: int = 65536,
    *,
    allow_nonfinite: bool = False,
    name: str | None = None,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Stream a file as mono blocks at ``sample_rate`` without loading it whole.

    Memory stays bounded by ``block_frames`` whatever the file's length.

    Parameters
    ----------
    path : path-like or binary file object
        The file.
    sample_rate : int
        Output rate; blocks are resampled with a :class:`StreamResampler`, so their
        concatenation equals ``read_audio(path, sample_rate).samples`` up to rounding.
    channel : "mix" or int
        Channel selection as in :func:`read_audio`.
    block_frames : int
        File frames read per step.
    allow_nonfinite : bool
        Pass NaN/inf samples on instead of raising (a stream replayed into the daemon,
        whose quality check turns such windows into ``nan`` signal events).
    name : str, optional
        How messages name the file.
    max_seconds : float, optional
        Refuse a file whose header announces more audio (see :func:`open_audio`).

    Yields
    ------
    np.ndarray
        Shape ``(m,)`` ``float32`` blocks (never empty).
    """
    label = input_name(path, name)
    with open_audio(path, label, max_seconds) as f:
        check_channel(channel, f.channels, label)
        stream = StreamResampler(int(f.samplerate), int(sample_rate))
        while True:
            frames = _read_frames(f, block_frames, label, finite=not allow_nonfinite)
            if frames.shape[0] == 0:
                break
            out = stream.process(to_mono(frames, channel))
            if out.size:
                yield out
        tail = stream.flush()
        if tail.size:
            yield tail


def list_audio_files(directory: str | os.PathLike) -> list[Path]:
    """WAV/FLAC files directly in ``directory``, sorted by name.

    Parameters
    ----------
    directory : path-like
        A folder.

    Returns
    -------
    list of Path
        Possibly empty.
    """
    return sorted(
        p for p in Path(directory).iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    )


def write_audio(
    path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write audio crash-safely: a temporary file, fsync, then an atomic rename.

    A reader never sees a half-written file, and after a crash either the old file or the
    complete new one exists. The format follows the suffix (``.wav``, ``.flac``).

    Parameters
    ----------
    path : path-like
        Destination; its directory must exist.
    samples : np.ndarray
        Shape ``(n,)`` or ``(n, channels)``, float in [-1, 1] (values beyond are clipped
        by integer subtypes).
    sample_rate : int
        Rate in Hz.
    subtype : str, optional
        libsndfile subtype (``"PCM_16"``, ``"FLOAT"``...); default: the format's default
        (16-bit PCM for both WAV and FLAC).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    InputError
        Empty or non-finite samples, or a bad shape.
    AudioFileError
        The file cannot be written.
    """
    path = Path(path)
    data = np.asarray(samples)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise InputError(f"samples must have shape (n,) or (n, channels), got {data.shape}")
    if not np.isfinite(data).all():
        raise InputError("samples contain NaN or infinite values")
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the audio format from the name {path.name!r}",
            help="use a .wav or .flac suffix",
        )
    try:  # 0600: recordings are the service user's only (edgeasd.filemode)
        with replacing(path, AUDIO_MODE) as fh:
            sf.write(fh, data, int(sample_rate), format=fmt, subtype=subtype)
    except BaseException as exc:
        # soundfile asserts the frame count written: a full disk raises AssertionError
        if isinstance(exc, OSError | sf.LibsndfileError | RuntimeError | AssertionError):
            raise AudioFileError(
                f"cannot write {path}: {exc}",
                help="check disk space and permissions of the directory",
            ) from exc
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Persist a rename by syncing its directory (best effort where unsupported)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
