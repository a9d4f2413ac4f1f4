"""File enrollment, streamed: recordings read, resampled, windowed, embedded and kept in blocks.

Memory does not grow with a file's length: a file is read block by block
(:func:`edgeasd.audio.io.iter_audio`, resampled per block with the
:class:`~edgeasd.audio.resample.StreamResampler`), its windows are embedded
``batch_size`` at a time, and each group's audio goes straight to a staged FLAC file
(:class:`edgeasd.agent.enrollment.grouping.GroupBuilder`); only the embeddings stay in memory. A
file may be a path or an open binary file object (a descriptor received over the control
socket).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd import readable
from edgeasd.agent.enrollment import guard
from edgeasd.agent.enrollment.bank_lifecycle import open_bank
from edgeasd.agent.enrollment.batch import Batch, validate_tag
from edgeasd.agent.enrollment.enroll import (
    DEFAULT_GROUP_SECONDS,
    commit,
    discard_staged,
    enrollment_result,
)
from edgeasd.agent.enrollment.grouping import GroupBuilder
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.agent.enrollment.windows import rejection_reasons
from edgeasd.audio import quality
from edgeasd.audio.io import AudioInput, input_name, iter_audio, open_audio
from edgeasd.audio.sources import AudioBlock
from edgeasd.audio.windower import Window, Windower
from edgeasd.config.paths import Paths
from edgeasd.errors import AudioFileError
from edgeasd.scoring import store

if TYPE_CHECKING:
    from edgeasd.config import Config, EnrollmentConfig, ScoringConfig
    from edgeasd.embedding.onnx import ModelInfo
    from edgeasd.interfaces import Embedder

log = logging.getLogger(__name__)

#: Default of ``enrollment.max_request_seconds``: most audio one file enrollment request may
#: hold (all its files together). Memory does not grow with it (files are streamed); it
#: bounds the time a request keeps the embedder busy and its client waiting: 2 h of audio
#: embed in about 15 s with the default model on 2 x86 cores (10 s windows, 0.02 s each,
#: measured; proportionally longer on a slower board), and its kept FLAC (63 MB per
#: hour at 16 kHz, measured on the DCASE and MIMII test clips) fits the default
#: enrollment.audio_max_bytes (256 MiB).
DEFAULT_MAX_REQUEST_SECONDS = 7200.0


def iter_file_windows(
    source: AudioInput,
    info: ModelInfo,
    hop_seconds: float | None = None,
    quality_options: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    max_seconds: float | None = None,
    stats: dict[str, float] | None = None,
) -> Iterator[tuple[Window, quality.Quality]]:
    """Stream a recording at the model's rate as windows, each with its quality verdict.

    Memory is bounded by a read block and a window, whatever the file's length.

    Parameters
    ----------
    source : path-like or binary file object
    info : edgeasd.embedding.onnx.ModelInfo
    hop_seconds : float, optional
        Step between windows (default: the model's window length).
    quality_options : dict, optional
        Keyword arguments of :func:`edgeasd.audio.quality.assess`.
    name : str, optional
        How messages name the file.
    max_seconds : float, optional
        Refuse a file announcing more audio (``enrollment.max_request_seconds``).
    stats : dict, optional
        Receives ``seconds``: the audio read so far.

    Yields
    ------
    window : Window
        ``start_time`` is the offset in seconds from the start of the file.
    quality : Quality
        Its signal quality (``quality.ok``: it may be enrolled; a clipped window never is).
    """
    windower = Windower(info.sample_rate, info.window_seconds, hop_seconds or info.window_seconds)
    pos = 0
    for block in iter_audio(source, info.sample_rate, name=name, max_seconds=max_seconds):
        for window in windower.push(AudioBlock(block, pos / info.sample_rate)):
            yield window, quality.assess(window.samples, **(quality_options or {}))
        pos += block.size
        if stats is not None:
            stats["seconds"] = pos / info.sample_rate


def file_windows(
    path: AudioInput,
    info: ModelInfo,
    hop_seconds: float | None = None,
    quality_options: dict[str, Any] | None = None,
    *,
    name: str | None = None,
) -> Iterator[Window]:
    """The good windows of a recording, streamed (see :func:`iter_file_windows`).

    Raises
    ------
    AudioFileError
        Unreadable file, or no window of usable signal (too short, silent, clipped...),
        raised once the file is exhausted.
    """
    label = input_name(path, name)
    seen, rejected = 0, []
    for window, q in iter_file_windows(path, info, hop_seconds, quality_options, name=label):
        seen += 1
        if q.ok:
            yield window
        else:
            rejected.append(q)
    if seen == len(rejected):
        raise _no_window(label, info, rejected)


def _no_window(
    label: str, info: ModelInfo, rejected: Sequence[quality.Quality], seconds: float | None = None
) -> AudioFileError:
    held = "" if seconds is None else f" in {seconds:.1f} s of audio"
    reasons = rejection_reasons(rejected)
    return AudioFileError(
        f"{label}: no usable {info.window_seconds:g} s window{held} to enroll"
        + (f" (refused: {reasons})" if reasons else " (shorter than one window)"),
        help=f"enroll recordings of the running machine at least {info.window_seconds:g} s "
        "long with an audible sound that is not clipped (lower the input gain: a clipped "
        "window is scored, but never enrolled)",
    )


def file_batches(
    files: Sequence[AudioInput],
    embedder: Embedder,
    domain: str,
    hop_seconds: float | None = None,
    quality_options: dict[str, Any] | None = None,
    group_seconds: float = DEFAULT_GROUP_SECONDS,
    *,
    names: Sequence[str] | None = None,
    stage_dir: Path | None = None,
    max_seconds: float = DEFAULT_MAX_REQUEST_SECONDS,
    batch_size: int = 16,
    progress: Callable[[str], None] | None = None,
) -> list[Batch]:
    """Stream, window and embed recordings, each split into groups of ``group_seconds``.

    Each file is read block by block, its windows embedded ``batch_size`` at a time, and
    the audio of each group written to a staged FLAC file in ``stage_dir`` as it goes: only
    the embeddings (``dim`` floats per window) stay in memory, so memory does not grow with
    the length of the files. Every file is processed before anything is returned, so one
    bad file refuses the whole request (nothing is half enrolled, staged audio is deleted).

    Parameters
    ----------
    files : sequence of path-like or binary file objects
        The recordings; a file object (e.g. ``os.fdopen(fd, "rb")`` of a descriptor passed
        over the control socket) is read from its current position and not closed.
    embedder : edgeasd.embedding.onnx.Embedder
    domain : str
        Checked with :func:`validate_tag`.
    hop_seconds : float, optional
        Step between windows (default: the model's window length).
    quality_options : dict, optional
        The ``quality`` section, as keyword arguments.
    group_seconds : float
        ``enrollment.group_seconds``: most audio per group (see :func:`chunk_windows`).
    names : sequence of str, optional
        How messages (and ``bank list``'s origin) name each file; default: its path or
        the file object's ``name``.
    stage_dir : Path, optional
        Where to stage the groups' audio (the kept-audio folder); None keeps no audio.
    max_seconds : float
        ``enrollment.max_request_seconds``: most audio of all files together.
    batch_size : int
        Windows embedded per call.
    progress : callable, optional
        Receives one line per file once it is embedded: ``file 2 of 5: NAME: 36 windows
        (6 min of audio); 2 not enrolled: 2 clipped (...)``.

    Returns
    -------
    list of Batch
        File by file, each file's groups in time order; ``staged`` set when audio is kept.

    Raises
    ------
    AudioFileError
        A file is unreadable, too long, of an unusable sample rate, or has no window of
        usable signal (too short, silent...).
    InputError
        A bad domain tag.
    """
    validate_tag("domain", domain)
    info = embedder.info
    labels = [input_name(f, None if names is None else names[i]) for i, f in enumerate(files)]
    builders: list[GroupBuilder] = []
    left = float(max_seconds)
    try:
        for number, (source, label) in enumerate(zip(files, labels, strict=True), 1):
            origin = label
            if isinstance(source, str | os.PathLike) and names is None:
                origin = str(Path(source).resolve())
            builder = GroupBuilder(
                "file",
                domain,
                origin,
                info.sample_rate,
                info.window_seconds,
                group_seconds,
                stage_dir,
                contiguous=True,
            )
            builders.append(builder)
            seconds, rejected = _stream_file(
                source, label, embedder, builder, hop_seconds, quality_options, left, batch_size
            )
            left -= seconds
            if progress is not None:
                line = (
                    f"file {number} of {len(files)}: {label}: {builder.collected} windows "
                    f"({readable.duration(seconds)} of audio)"
                )
                if rejected:
                    line += f"; {len(rejected)} not enrolled: {rejection_reasons(rejected)}"
                progress(line)
        batches = [b for builder in builders for b in builder.finish()]
    except BaseException:
        for builder in builders:
            builder.discard()
        raise
    return batches


#: Sample formats of at most 8 bits: their quantization noise (about -50 dBFS for full-scale
#: 8-bit PCM) is far above a machine's normal sound. Measured (issue 17): one 8-bit
#: recording enrolled into a 16 kHz bank moved the threshold from 2.6 to 24-26 ("cannot
#: alert"). u-law and A-law keep about 13 bits of dynamic range near zero and are accepted.
EIGHT_BIT_SUBTYPES = frozenset({"PCM_U8", "PCM_S8"})


def refuse_unrepresentable(source: AudioInput, label: str, model_rate: int) -> None:
    """Refuse a recording the bank cannot represent: 8-bit, or a rate below the model's.

    Upsampled audio lacks everything above its Nyquist frequency, which the model's
    normal references hold: measured (issue 17), one 8 kHz recording enrolled into a 16 kHz
    bank moved the threshold from 2.6 to 24-26 and the bank said "cannot alert".

    Raises
    ------
    AudioFileError
        Naming the file, its format and what to record instead.
    """
    with open_audio(source, label) as f:
        rate, subtype = int(f.samplerate), str(f.subtype)
    if rate < model_rate:
        raise AudioFileError(
            f"{label} is sampled at {rate} Hz, below the model's {model_rate} Hz: it lacks "
            f"the sound between {rate // 2} and {model_rate // 2} Hz that the enrolled normal "
            "audio holds, and would make the bank unable to alert; nothing was enrolled",
            help=f"record at {model_rate} Hz or more (e.g. `arecord -r {model_rate} -f S16_LE`)",
        )
    if subtype in EIGHT_BIT_SUBTYPES:
        raise AudioFileError(
            f"{label} is 8-bit audio ({subtype}): its quantization noise hides the machine's "
            "sound, and would make the bank unable to alert; nothing was enrolled",
            help="record with 16 bits or more (e.g. `arecord -f S16_LE`)",
        )


def _stream_file(
    source: AudioInput,
    label: str,
    embedder: Embedder,
    builder: GroupBuilder,
    hop_seconds: float | None,
    quality_options: dict[str, Any] | None,
    max_seconds: float,
    batch_size: int,
) -> tuple[float, list[quality.Quality]]:
    """Feed one file's windows to ``builder``, embedding good ones in batches.

    Returns the file's seconds of audio and the qualities of the windows not enrolled.
    """
    info = embedder.info
    refuse_unrepresentable(source, label, info.sample_rate)
    queue: list[tuple[int, np.ndarray]] = []  # (group index, samples) waiting for embedding

    def flush() -> None:
        if queue:
            emb = embedder.embed(np.stack([x for _, x in queue]).astype(np.float32, copy=False))
            for (gi, _), e in zip(queue, emb, strict=True):
                builder.embedded(gi, e[None, :])
            queue.clear()

    rejected: list[quality.Quality] = []
    stats = {"seconds": 0.0}
    windows = iter_file_windows(
        source, info, hop_seconds, quality_options, name=label, max_seconds=max_seconds, stats=stats
    )
    for window, q in windows:
        gi = builder.add(window.start_time, window.samples, good=q.ok)
        if gi is None:
            rejected.append(q)
            continue
        queue.append((gi, window.samples))
        if len(queue) >= batch_size:
            flush()
    flush()
    if builder.collected == 0:
        raise _no_window(label, info, rejected, stats["seconds"])
    if rejected:
        log.warning(
            "%s: %d window(s) not enrolled: %s", label, len(rejected), rejection_reasons(rejected)
        )
    return stats["seconds"], rejected


def enroll_files_direct(
    dirs: Paths,
    paths: Sequence[str | os.PathLike[str]],
    domain: str,
    embedder: Embedder,
    scoring: ScoringConfig,
    enrollment: EnrollmentConfig,
    hop_seconds: float | None = None,
    quality_options: dict[str, Any] | None = None,
    config: Config | None = None,
    progress: Callable[[str], None] | None = None,
    accept_anomalous: bool = False,
) -> dict[str, Any]:
    """Enroll recordings straight into the bank on disk (no daemon running).

    The files are streamed and embedded first (their audio staged in the kept-audio
    folder); then, under the bank's write lock, the bank is loaded (or created), every file
    is enrolled as groups of ``enrollment.group_seconds`` of audio and the bank is saved
    (all groups of all files, or nothing) by :func:`commit`.

    Parameters
    ----------
    dirs : edgeasd.config.paths.Paths
        The agent's directories: the bank (``dirs.bank``) and the kept audio
        (``dirs.audio_dir``).
    paths : sequence of path-like
        The recordings to enroll.
    config : edgeasd.config.Config, optional
        The whole configuration: the reported threshold is its rule's
        (:func:`edgeasd.agent.alerts.decision.bank_state`). Default: built from ``scoring`` and
        ``enrollment`` with the other sections at their defaults.
    progress : callable, optional
        One line per file, as :func:`file_batches` gives them.
    accept_anomalous : bool
        Enroll windows the enrollment guard refuses (:func:`edgeasd.agent.enrollment.guard.check`).

    Returns
    -------
    dict
        ``ids``, ``groups``, ``bank_size``, ``domains`` (per-domain counts), the fields of
        :meth:`edgeasd.agent.alerts.decision.BankState.as_dict` (``state``, ``threshold``...) and
        ``warnings``: the bank state's, then audio that could not be kept (the enrollment
        still succeeded).
    """
    from edgeasd.agent.alerts import decision
    from edgeasd.config import Config

    if config is None:
        config = dataclasses.replace(Config(), scoring=scoring, enrollment=enrollment)
    audio = (
        AudioStore(dirs.audio_dir, enrollment.audio_max_bytes) if enrollment.keep_audio else None
    )
    batches = file_batches(
        paths,
        embedder,
        domain,
        hop_seconds,
        quality_options,
        enrollment.group_seconds,
        stage_dir=None if audio is None else dirs.audio_dir,
        max_seconds=enrollment.max_request_seconds,
        progress=progress,
    )
    path = dirs.bank
    hop = hop_seconds or embedder.info.window_seconds
    try:
        with store.locked(path):
            bank = open_bank(path, scoring, embedder.info)
            before = decision.bank_state(bank, config, hop)
            report = guard.check(
                bank, before.threshold if before.calibrated else None, batches, accept_anomalous
            )
            ids = commit(bank, path, batches, audio, scoring.max_references)
    except BaseException:
        discard_staged(batches)
        raise
    state = decision.bank_state(bank, config, hop)
    result = {**enrollment_result(bank, batches, ids, state), "guard": report}
    result["warnings"] = list(result.get("warnings") or []) + (
        [] if audio is None else list(audio.warnings)
    )
    return result
