"""Choosing a source: ``make_source(kind, options, sample_rate)`` for ``source.kind``.

Kept apart from :mod:`edgeasd.audio.sources` (the block type, the protocol and the file
source), which the demo and microphone sources build on: the factory imports them, never
the other way round.
"""

from __future__ import annotations

from typing import Any

from edgeasd.audio.sources import BaseSource, FileSource
from edgeasd.errors import ConfigError

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
