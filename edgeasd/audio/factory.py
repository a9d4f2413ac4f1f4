"""Choosing a source: ``make_source(kind, options, sample_rate)`` for ``source.kind``.

Kept apart from :mod:`edgeasd.audio.sources` (the block type, the protocol and the file
source), which the demo and microphone sources build on: the factory imports them, never
the other way round.
"""

from __future__ import annotations

from typing import Any

from edgeasd.audio.sources import BaseSource, FileSource
from edgeasd.errors import AudioFileError, ConfigError

#: Options each source kind accepts (beyond the model's sample rate).
SOURCE_OPTIONS: dict[str, tuple[str, ...]] = {
    "microphone": (
        "device",
        "channels",
        "capture_rate",
        "capture_channels",
        "blocksize",
        "latency",
        "stall_seconds",
    ),
    "file": ("path", "realtime", "loop", "channel", "block_seconds"),
    "demo": (
        "machine",
        "anomaly",
        "seconds_normal",
        "seconds_anomalous",
        "seconds_after",
        "severity",
        "seed",
        "realtime",
        "block_seconds",
        "clip_seconds",
    ),
}


def make_source(kind: str, options: dict[str, Any] | None, sample_rate: int) -> BaseSource:
    """Build the source a configuration asks for.

    Parameters
    ----------
    kind : str
        ``"microphone"``, ``"file"`` or ``"demo"``.
    options : dict
        Keyword arguments of the source class (see :data:`SOURCE_OPTIONS`); ``None``
        values are left out, so the class defaults apply.
    sample_rate : int
        The model's sample rate.

    Returns
    -------
    BaseSource
        An open source.

    Raises
    ------
    ConfigError
        Unknown kind, unknown option or missing ``path`` for a file source.
    DeviceError, AudioFileError
        From the source itself.
    """
    if kind not in SOURCE_OPTIONS:
        raise ConfigError(
            f"source.kind {kind!r} is not known",
            help="use one of: " + ", ".join(SOURCE_OPTIONS),
        )
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(opts) - set(SOURCE_OPTIONS[kind]))
    if unknown:
        raise ConfigError(
            f"source option(s) {', '.join(unknown)} not allowed for source.kind {kind!r}",
            help="allowed: " + ", ".join(SOURCE_OPTIONS[kind]),
        )
    if kind == "file":
        if "path" not in opts:
            raise ConfigError(
                "source.path is required for source.kind 'file'",
                help="set it to a WAV/FLAC file or a directory of them",
            )
        return FileSource(sample_rate=sample_rate, **opts)
    if kind == "microphone":
        from edgeasd.audio.microphone import MicrophoneSource

        return MicrophoneSource(sample_rate=sample_rate, **opts)
    from edgeasd.audio.demo import DemoSource

    return DemoSource(sample_rate=sample_rate, **opts)


def check_source(kind: str, options: dict[str, Any] | None) -> None:
    """Refuse what :func:`make_source` would refuse at start, without capturing anything.

    For ``config check`` and ``doctor``: a ``file`` source's path must exist and hold WAV
    or FLAC files (the folder is listed, no file is read). A microphone is not opened here
    (``doctor`` records from it); the demo source needs nothing.

    Parameters
    ----------
    kind : str
        ``source.kind``.
    options : dict
        The :func:`make_source` options (``edgeasd.agent`` builds them from the
        configuration).

    Raises
    ------
    ConfigError
        Naming ``source.path`` and what to do.
    """
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    if kind != "file" or "path" not in opts:
        return
    try:
        FileSource(opts["path"], sample_rate=16000).close()  # lists the files, reads none
    except AudioFileError as exc:
        raise ConfigError(
            f"source.path: {exc.message}",
            help="set source.path to an existing WAV/FLAC file or a folder of them (relative "
            "paths start at the configuration file's folder), or use source.kind: demo to "
            "try the agent without a recording",
        ) from None
