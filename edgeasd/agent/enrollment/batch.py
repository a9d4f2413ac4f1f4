"""One enrollment group and the one check of tags: what enrollment, grouping and kept audio share.

A :class:`Batch` is one group of embeddings (with its audio) committed together; tags
(domains, groups) are checked by :func:`validate_tag` wherever they come from. Kept apart
from :mod:`edgeasd.agent.enrollment.enroll` so that the group builder and the audio store need not
import the enrollment module that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.errors import InputError


@dataclass(frozen=True)
class Batch:
    """One group of embeddings to enroll together.

    Attributes
    ----------
    embeddings : np.ndarray, shape (n, dim), float32
    domain : str
        Free-form domain tag (``"source"``, ``"target"``, ``"belt-2026"``...).
    group : str
        Group id: the windows of one chunk (at most ``enrollment.group_seconds`` of
        contiguous audio) of one file or one ``--next`` request.
    segments : list of np.ndarray, each (samples,) float32
        The audio the embeddings came from, at ``sample_rate``, kept for rebuilds.
    sample_rate : int
    origin : str
        Where the audio came from (a file path or ``"live"``), for ``bank list``.
    staged : Path, optional
        A FLAC file already holding the group's audio (streamed enrollment, see
        :mod:`edgeasd.agent.enrollment.grouping`); ``segments`` is then empty.
    segment_lengths : tuple of int
        Sample counts of the segments in ``staged``.
    window_starts : tuple of float
        Start of each embedded window (seconds into the file, or UNIX time for live
        windows), for messages that name windows (the enrollment guard); may be empty.
    """

    embeddings: np.ndarray
    domain: str
    group: str
    segments: list[np.ndarray]
    sample_rate: int
    origin: str
    staged: Path | None = None
    segment_lengths: tuple[int, ...] = ()
    window_starts: tuple[float, ...] = ()


#: Longest domain or group tag: enough for ``belt-2-after-bearing-change-2026-11``, short
#: enough for a status line and a file name.
MAX_TAG_LENGTH = 64
_TAG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def validate_tag(kind: str, text: Any) -> str:
    """Check a domain or group tag: 1 to 64 characters of ``[A-Za-z0-9._-]``.

    The one check of tags, used by the CLI and by the daemon for every request: tags end
    up in file names (kept audio), logs and terminal output, so no path separator, space,
    control or escape character is allowed.

    Parameters
    ----------
    kind : str
        ``"domain"`` or ``"group"``, for the message.
    text : Any
        The tag.

    Returns
    -------
    str
        ``text``, unchanged.

    Raises
    ------
    InputError
        Not a string, empty, too long, a leading dot, or a character outside the set.
    """
    if not isinstance(text, str) or not text:
        raise InputError(
            f"the {kind} tag must not be empty",
            help=f"give a {kind} tag of letters, digits, '.', '_' or '-', e.g. 'target'",
        )
    bad = sorted({c for c in text if c not in _TAG_CHARS})
    if bad or len(text) > MAX_TAG_LENGTH or text.startswith("."):
        why = (
            f"contains {', '.join(repr(c) for c in bad[:5])}"
            if bad
            else f"is longer than {MAX_TAG_LENGTH} characters"
            if len(text) > MAX_TAG_LENGTH
            else "starts with '.'"
        )
        raise InputError(
            f"the {kind} tag {text[:MAX_TAG_LENGTH]!r} {why}",
            help=f"use at most {MAX_TAG_LENGTH} letters, digits, '.', '_' or '-' "
            "(not starting with '.')",
        )
    return text
