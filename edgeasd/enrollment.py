"""Enrollment of normal audio into the reference bank.

Two kinds of enrollment exist, with the grouping the bank's density and calibration rely on
(``exclude_same_group``: a reference's density ignores its own group, and calibration leaves
whole groups out):

* recordings (``edgeasd enroll FILE...``): each file is windowed like live audio;
* live windows (``edgeasd enroll --next N``): the next N good live windows.

In both, the windows are split by their start times into consecutive groups of at most
``enrollment.group_seconds`` (default 60 s) of contiguous audio (:func:`chunk_windows`).
Windows that close together (overlapping or adjacent windows of one recording) are near
twins: they must not define each other's density, nor be left out separately in
calibration. Windows farther apart count as independent normal samples, so a single long
enrollment already yields several groups, and a few minutes enrolled after a domain shift
give the new domain densities measured among its own windows rather than distances to the
old domain. A 10 s clip is one group. One request stays all-or-nothing: all its groups are
committed together (:func:`commit`).

The daemon does live enrollment itself (see :mod:`edgeasd.daemon`); this module holds what
both the daemon and the direct (daemon not running) mode share: embedding files, opening the
bank with its model check, committing a batch of groups atomically (all groups or none, saved
before success is reported), the threshold in force, and the one check of domain and group
tags (:func:`validate_tag`). Streamed file enrollment lives in :mod:`edgeasd.enrollment_files`
(its names are reachable here too); the enrolled audio is kept for ``edgeasd bank rebuild``
by :mod:`edgeasd.kept_audio`.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.audio import quality
from edgeasd.audio.sources import AudioBlock
from edgeasd.audio.windower import Window, Windower
from edgeasd.errors import BankError, InputError
from edgeasd.grouping import new_group_id, starts_new_group
from edgeasd.kept_audio import AudioStore
from edgeasd.model_check import require_compatible
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import DEFAULT_FIXED

if TYPE_CHECKING:
    from edgeasd.config import Config, ScoringConfig
    from edgeasd.decision import BankState
    from edgeasd.embed import ModelInfo
    from edgeasd.interfaces import Embedder

log = logging.getLogger(__name__)

#: Default of ``enrollment.group_seconds``: most contiguous audio per enrollment group.
DEFAULT_GROUP_SECONDS = 60.0


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
        :mod:`edgeasd.grouping`); ``segments`` is then empty.
    segment_lengths : tuple of int
        Sample counts of the segments in ``staged``.
    """

    embeddings: np.ndarray
    domain: str
    group: str
    segments: list[np.ndarray]
    sample_rate: int
    origin: str
    staged: Path | None = None
    segment_lengths: tuple[int, ...] = ()


def chunk_group_ids(kind: str, n: int) -> list[str]:
    """Group ids of the ``n`` chunks of one request: a common id plus the chunk number.

    Parameters
    ----------
    kind : str
        ``"live"`` or ``"file"``.
    n : int
        Number of chunks.

    Returns
    -------
    list of str
        ``["live-20261128T132401-3f2a1c-000", "...-001", ...]``: unique, and sorted in
        enrollment order.
    """
    base = new_group_id(kind)
    return [f"{base}-{i:03d}" for i in range(n)]


def chunk_windows(
    start_times: Iterable[float], window_seconds: float, group_seconds: float
) -> list[list[int]]:
    """Split windows into consecutive groups of at most ``group_seconds`` of audio.

    A window joins the current group while the group, from its first window's start to
    this window's end, spans at most ``group_seconds``; otherwise it starts the next
    group (a gap in the audio therefore starts a new group too). A window is never split,
    and a window longer than ``group_seconds`` is a group of its own.

    Parameters
    ----------
    start_times : iterable of float
        Start time of each window in seconds (UNIX time or an offset into a file).
    window_seconds : float
        Window length.
    group_seconds : float
        Most audio per group (``enrollment.group_seconds``), > 0.

    Returns
    -------
    list of list of int
        Indices into ``start_times``, each group in time order, groups in time order;
        every index appears exactly once.

    Raises
    ------
    InputError
        ``group_seconds`` or ``window_seconds`` is not a positive number.
    """
    if not (group_seconds > 0 and window_seconds > 0):
        raise InputError(
            f"group_seconds ({group_seconds}) and window_seconds ({window_seconds}) must be > 0",
            help="set enrollment.group_seconds to a positive number of seconds",
        )
    starts = np.asarray(list(start_times), dtype=np.float64)
    chunks: list[list[int]] = []
    first = None
    for i in np.argsort(starts, kind="stable"):
        t = float(starts[i])
        if starts_new_group(t, first, window_seconds, group_seconds):
            chunks.append([])
            first = t
        chunks[-1].append(int(i))
    return chunks


def chunked_batches(
    embeddings: np.ndarray,
    windows: Sequence[Window],
    window_seconds: float,
    group_seconds: float,
    *,
    kind: str,
    domain: str,
    sample_rate: int,
    origin: str,
    audio: np.ndarray | None = None,
) -> list[Batch]:
    """Split one request's embedded windows into batches of at most ``group_seconds``.

    Parameters
    ----------
    embeddings : np.ndarray, shape (len(windows), dim), float32
    windows : sequence of Window
        The windows the embeddings came from (``start_time`` in seconds).
    window_seconds, group_seconds : float
        See :func:`chunk_windows`.
    kind : str
        Prefix of the group ids (``"live"``, ``"file"``).
    domain : str
    sample_rate : int
    origin : str
    audio : np.ndarray, optional
        The whole recording, whose offset 0 is ``start_time`` 0 (file enrollment): each
        batch then keeps the contiguous audio its windows cover as one segment. Without
        it (live), each batch keeps its windows' samples, one segment per window.

    Returns
    -------
    list of Batch
        In time order, with ids from :func:`chunk_group_ids`.
    """
    chunks = chunk_windows([w.start_time for w in windows], window_seconds, group_seconds)
    groups = chunk_group_ids(kind, len(chunks))
    batches = []
    for chunk, group in zip(chunks, groups, strict=True):
        if audio is None:
            segments = [windows[i].samples for i in chunk]
        else:
            first, last = windows[chunk[0]], windows[chunk[-1]]
            lo = round(first.start_time * sample_rate)
            hi = round(last.start_time * sample_rate) + len(last.samples)
            segments = [np.asarray(audio[lo:hi], dtype=np.float32)]
        batches.append(
            Batch(
                embeddings=embeddings[chunk],
                domain=domain,
                group=group,
                segments=segments,
                sample_rate=sample_rate,
                origin=origin,
            )
        )
    return batches


def live_batches(
    windows: Sequence[Window],
    embedder: Embedder,
    domain: str,
    window_seconds: float,
    group_seconds: float,
) -> list[Batch]:
    """Embed the windows of one ``enroll --next N`` request, split into groups by time.

    Parameters
    ----------
    windows : sequence of Window
        The collected live windows (``start_time`` in UNIX seconds).
    embedder : edgeasd.embed.Embedder
    domain : str
    window_seconds, group_seconds : float
        See :func:`chunk_windows`.
    """
    return chunked_batches(
        embed_windows(embedder, [w.samples for w in windows]),
        windows,
        window_seconds,
        group_seconds,
        kind="live",
        domain=domain,
        sample_rate=embedder.info.sample_rate,
        origin="live",
    )


# ---------------------------------------------------------------------------- bank lifecycle


def new_bank(scoring: ScoringConfig, model_info: ModelInfo) -> ReferenceBank:
    """An empty bank with the configured scoring options, stamped with the model's id.

    Parameters
    ----------
    scoring : edgeasd.config.ScoringConfig
        ``density``, ``k``, ``r``, ``norm``, ``exclude_same_group``.
    model_info : edgeasd.embed.ModelInfo
    """
    bank = ReferenceBank(
        model_info.dim,
        metric=model_info.metric,
        density=scoring.density,
        k=scoring.k,
        r=scoring.r,
        norm=scoring.norm,
        exclude_same_group=scoring.exclude_same_group,
    )
    bank.meta["model_id"] = model_info.id
    bank.meta["model_name"] = model_info.name
    return bank


def check_model(bank: ReferenceBank, model_info: ModelInfo, path: Path | None = None) -> None:
    """Refuse a bank embedded with another model than ``model_info``.

    The rule (the model's own id or one it declares compatible) is
    :func:`edgeasd.model_check.accepts`.

    Raises
    ------
    ModelError
        With the two model ids and the command that fixes it.
    """
    require_compatible(bank.meta.get("model_id"), model_info, path)


#: Scoring settings a bank fixes when it is built: ``scoring.<key>`` -> bank attribute.
BANK_SETTINGS = {
    "density": "density_mode",
    "k": "k",
    "r": "r",
    "norm": "norm",
    "exclude_same_group": "exclude_same_group",
}


def settings_mismatch(bank: ReferenceBank, scoring: ScoringConfig) -> str | None:
    """Which ``scoring`` keys differ from the settings the bank was built with (None: none).

    A bank keeps the density, k, r, norm and exclude_same_group it was built with; changing
    them in the configuration does nothing until ``edgeasd bank rebuild``. This warns rather
    than refuses: the agent keeps monitoring with the bank it has (the daemon degrades,
    never dies), and the message says how to apply the new settings.
    """
    diff = [
        f"scoring.{key}: config {getattr(scoring, key)!r}, bank {getattr(bank, attr)!r}"
        for key, attr in BANK_SETTINGS.items()
        if getattr(scoring, key) != getattr(bank, attr)
    ]
    if not diff:
        return None
    return (
        "the bank was built with other scoring settings than configured ("
        + "; ".join(diff)
        + "); the bank's are in force: apply the configured ones with `edgeasd bank rebuild` "
        "(daemon stopped), or set them back in the configuration"
    )


def open_bank(path: Path, scoring: ScoringConfig, model_info: ModelInfo) -> ReferenceBank:
    """Load the bank at ``path`` (checking its model) or start an empty one if none exists.

    Logs a warning when the configured ``scoring`` settings differ from the bank's
    (:func:`settings_mismatch`).
    """
    if not Path(path).exists():
        return new_bank(scoring, model_info)
    bank = ReferenceBank.load(path)
    check_model(bank, model_info, path)
    mismatch = settings_mismatch(bank, scoring)
    if mismatch:
        log.warning("%s", mismatch)
    return bank


#: Test-only fault injection: ``EDGEASD_TEST_FAULT=before-bank-save`` or ``after-bank-save``
#: makes :func:`commit` SIGKILL its own process at that point (tests/faults). Unset in
#: production; no other value does anything.
FAULT_ENV = "EDGEASD_TEST_FAULT"


def _fault_point(name: str) -> None:
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def commit(
    bank: ReferenceBank,
    path: Path,
    batches: Sequence[Batch],
    audio: AudioStore | None = None,
) -> list[int]:
    """Enroll every batch and save the bank: all groups or none, persisted before returning.

    Write order, so that no reference is acknowledged without its audio unless keeping the
    audio failed (which is then a warning, never a failure: the references are persisted):

    1. the groups' audio is put in place with a *pending* sidecar (``audio.stage``);
    2. the bank is saved (the enrollment is now persisted);
    3. the sidecars get the reference ids (``audio.confirm``).

    A kill between 1 and 2 leaves pending audio of a group the bank does not hold:
    ``bank rebuild`` names and skips it. A kill between 2 and 3 leaves pending audio of a
    group the bank holds: it is used. References whose audio is missing anyway (disk full,
    the size cap) are carried over by ``bank rebuild`` with their stored embeddings.

    The caller must hold the bank (the daemon's run-loop thread, or ``store.locked(path)`` in
    direct mode). On failure the in-memory bank may hold part of the batch: the caller must
    drop it and reload from ``path``, which still holds the previous state.

    Parameters
    ----------
    bank : ReferenceBank
    path : Path
        The bank file.
    batches : sequence of Batch
    audio : AudioStore, optional
        Where to keep the batches' audio (None: keep none; staged files are deleted).
        Problems are collected in ``audio.warnings``.

    Returns
    -------
    list of int
        The new reference ids, in batch order.
    """
    if audio is not None:
        audio.stage(batches)
    else:
        discard_staged(batches)
    _fault_point("before-bank-save")
    ids: list[int] = []
    try:
        if batches:  # one call: densities (and their warnings) reflect the whole request
            n = [len(b.embeddings) for b in batches]
            new = bank.enroll(
                np.concatenate([b.embeddings for b in batches]),
                domain=[b.domain for b, m in zip(batches, n, strict=True) for _ in range(m)],
                group=[b.group for b, m in zip(batches, n, strict=True) for _ in range(m)],
            )
            ids = [int(i) for i in new]
        bank.save(path)
    except BaseException:
        if audio is not None:
            for batch in batches:
                audio.drop(batch.group)
        raise
    _fault_point("after-bank-save")
    if audio is not None:
        audio.confirm(batches, ids)
    return ids


def discard_staged(batches: Sequence[Batch]) -> None:
    """Delete the staged audio files of batches that will not be committed."""
    for batch in batches:
        if batch.staged is not None:
            Path(batch.staged).unlink(missing_ok=True)


def threshold_for(bank: ReferenceBank, cfg: Config) -> tuple[float, str]:
    """The decision threshold (NaN if none can be derived yet) and where it came from.

    Applies the ``threshold`` section with :meth:`ReferenceBank.calibrate` (``rule``, ``q``,
    ``value``). ``value`` null means, for ``fixed``, the bank's default constant for its
    normalization (:data:`edgeasd.scoring.calibrate.DEFAULT_FIXED`: 3.0 under ``ratio``), and
    for ``auto`` no floor; it is passed explicitly, so that a constant configured earlier and
    saved with the bank does not outlive its removal from the configuration.

    Parameters
    ----------
    bank : ReferenceBank
    cfg : edgeasd.config.Config

    Returns
    -------
    threshold : float
        NaN for a data-driven rule on an empty bank, or one that cannot calibrate yet.
    source : str
        How it was derived, for the status and the alert records.
    """
    t = cfg.threshold
    value = t.value
    if value is None and t.rule == "auto":
        value = -np.inf  # no floor
    elif value is None and np.isfinite(DEFAULT_FIXED[bank.norm]):
        value = float(DEFAULT_FIXED[bank.norm])
    if t.rule != "fixed" and len(bank) == 0:
        return float("nan"), "none: the bank is empty"
    bank.calibrate(rule=t.rule, q=t.q, value=value)
    if t.rule == "fixed":
        return float(bank.threshold_), f"config: threshold.rule fixed, value {bank.threshold_:g}"
    return float(bank.threshold_), f"bank of {len(bank)}: {bank.threshold_rule_}"


#: A condition (domain tag) with less enrolled audio than this gets the "enroll more" warning.
#: A condition calibrates itself from its third group on (forward chaining skips the first
#: two, :mod:`edgeasd.scoring.forward`); 5 min = 5 groups of the default 60 s, 3 of them
#: scored. ``python benchmarks/run.py operating_point`` (target enrollment sweep in
#: BENCHMARKS.md, 8 held-out machine/seed sets): with 2 target recordings of 50 s (1.7 min)
#: 7.5 % of later target windows alarmed (53 % in the worst set), with 4 (3.3 min) or 6
#: (5 min) none did.
MIN_CONDITION_MINUTES = 5.0


def threshold_report(bank: ReferenceBank, cfg: Config, hop_seconds: float | None) -> dict[str, Any]:
    """The threshold in force, its rule and its predicted false-alarm rate.

    Parameters
    ----------
    bank : ReferenceBank
    cfg : edgeasd.config.Config
    hop_seconds : float or None
        Step between scored windows (``window.hop_seconds`` or the model's window length):
        converts the per-window rate into false alarms per day and minutes of audio for
        the warning (None, not known: both are None).

    Returns
    -------
    dict
        ``threshold`` (float, or None when there is none), ``rule`` (the configured
        ``threshold.rule``), ``source`` (how it was derived, as :func:`threshold_for`),
        ``predicted_false_alarm_rate`` (per window, or None:
        :func:`edgeasd.scoring.calibrate.predicted_rate` on the bank's forward-chaining
        scores, or its leave-one-group-out ones while there are none),
        ``predicted_false_alarms_per_day`` (that rate times ``86400 / hop_seconds``
        windows, or None) and ``warning`` (None, or what to enroll to calibrate better).
    """
    from edgeasd.scoring.calibrate import predicted_rate

    if hop_seconds is not None and not (np.isfinite(hop_seconds) and hop_seconds > 0):
        raise InputError(f"hop_seconds must be positive, got {hop_seconds!r}")
    threshold, source = threshold_for(bank, cfg)
    rate = None
    if len(bank) and np.isfinite(threshold):
        cal = bank.forward_scores_
        if not np.isfinite(cal).any():  # no forward-chaining scores yet: the LOGO ones
            cal = bank.loo_scores_
        r = predicted_rate(cal, threshold)
        rate = float(r) if np.isfinite(r) else None
    return {
        "threshold": float(threshold) if np.isfinite(threshold) else None,
        "rule": cfg.threshold.rule,
        "source": source,
        "predicted_false_alarm_rate": rate,
        "predicted_false_alarms_per_day": (
            None if rate is None or hop_seconds is None else rate * 86400.0 / hop_seconds
        ),
        "warning": (
            None if hop_seconds is None else _calibration_warning(bank, threshold, hop_seconds)
        ),
    }


def _calibration_warning(bank: ReferenceBank, threshold: float, hop_seconds: float) -> str | None:
    """What to enroll when a condition has too little audio to calibrate on (None: enough)."""
    if len(bank) == 0:
        return "the bank is empty: enroll normal operation (edgeasd enroll --next N, or FILE...)"
    domains, groups = bank.domains, bank.groups
    parts = []
    for d in sorted(set(domains.tolist())):
        mask = domains == d
        minutes = np.count_nonzero(mask) * hop_seconds / 60.0
        n_groups = len(set(groups[mask].tolist()))
        if minutes < MIN_CONDITION_MINUTES or n_groups < 2:
            more = max(MIN_CONDITION_MINUTES - minutes, 1.0)
            parts.append(
                f"{n_groups} recording group{'s' if n_groups != 1 else ''} ({minutes:.1f} min) "
                f"of condition {d!r}: enroll at least {more:.0f} more minutes, ideally from a "
                f"different hour (edgeasd enroll --domain {d} ...)"
            )
    if not np.isfinite(threshold):
        parts.append("no threshold yet: scores are not decided")
    return "; ".join(parts) or None


def bank_summary(bank: ReferenceBank) -> dict[str, int]:
    """Number of references per domain tag."""
    domains, counts = np.unique(
        np.asarray(bank.domains, dtype=object).astype(str), return_counts=True
    )
    return {str(d): int(c) for d, c in zip(domains, counts, strict=True)}


def domain_by_id(bank: ReferenceBank) -> dict[int, str]:
    """Domain tag of each reference id, for O(1) ``nearest_domain`` lookups per window.

    ``bank.domains`` builds an array of all N tags: read it once, not once per window.
    """
    return dict(zip(bank.ids.tolist(), bank.domains.tolist(), strict=True))


# ---------------------------------------------------------------------------- files


def embed_windows(
    embedder: Embedder, windows: Sequence[np.ndarray], batch_size: int = 16
) -> np.ndarray:
    """Embed a sequence of equal-length windows.

    Parameters
    ----------
    embedder : edgeasd.embed.Embedder
    windows : sequence of np.ndarray, each (samples,) float32

    Returns
    -------
    np.ndarray, shape (len(windows), dim), float32
    """
    parts = [
        embedder.embed(np.stack(windows[i : i + batch_size]).astype(np.float32, copy=False))
        for i in range(0, len(windows), batch_size)
    ]
    return np.concatenate(parts).astype(np.float32, copy=False)


def good_windows(
    samples: np.ndarray,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    quality_options: dict[str, Any] | None = None,
) -> tuple[list[Window], int]:
    """Cut ``samples`` into windows and keep those of usable signal quality.

    Parameters
    ----------
    samples : np.ndarray, shape (n,), float32
    sample_rate : int
    window_seconds, hop_seconds : float
    quality_options : dict, optional
        Keyword arguments of :func:`edgeasd.audio.quality.assess` (the ``quality`` section).

    Returns
    -------
    windows : list of Window
        ``start_time`` is the offset in seconds from the start of ``samples``.
    rejected : int
        Windows dropped for silence, clipping or a dead microphone.
    """
    assessed = assessed_windows(samples, sample_rate, window_seconds, hop_seconds, quality_options)
    kept = [w for w, q in assessed if q.ok]
    return kept, len(assessed) - len(kept)


def assessed_windows(
    samples: np.ndarray,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    quality_options: dict[str, Any] | None = None,
) -> list[tuple[Window, quality.Quality]]:
    """Cut ``samples`` into windows, each with its signal quality (none dropped).

    Returns
    -------
    list of (Window, Quality)
        ``start_time`` is the offset in seconds from the start of ``samples``.
    """
    windower = Windower(sample_rate, window_seconds, hop_seconds)
    block = AudioBlock(np.asarray(samples, dtype=np.float32), 0.0)
    return [(w, quality.assess(w.samples, **(quality_options or {}))) for w in windower.push(block)]


def rejection_reasons(qualities: Sequence[quality.Quality]) -> str:
    """Why windows were refused for enrollment, e.g. ``"3 clipped (...), 1 dead"``."""
    counts: dict[str, int] = {}
    for q in qualities:
        if not q.ok:
            counts[q.status] = counts.get(q.status, 0) + 1
    parts = []
    for status, n in counts.items():
        why = " (the bank must not learn clipping as normal)" if status == "clipping" else ""
        parts.append(f"{n} {'clipped' if status == 'clipping' else status}{why}")
    return ", ".join(parts)


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


def enrollment_result(
    bank: ReferenceBank, batches: Sequence[Batch], ids: Sequence[int], state: BankState
) -> dict:
    """The JSON-serializable summary reported after an enrollment.

    Parameters
    ----------
    bank : ReferenceBank
    batches : sequence of Batch
    ids : sequence of int
    state : edgeasd.decision.BankState
        The bank's state under the configuration (:func:`edgeasd.decision.bank_state`):
        the threshold reported is the configured rule's, never a rule stored earlier.
    """
    return {
        "ids": [int(i) for i in ids],
        "groups": [b.group for b in batches],
        "bank_size": len(bank),
        "domains": bank_summary(bank),
        **state.as_dict(),
    }


def require_bank(bank: ReferenceBank, minimum: int) -> None:
    """Refuse scoring with a bank smaller than ``minimum`` references."""
    if len(bank) < minimum:
        raise BankError(
            f"the reference bank holds {len(bank)} references; scoring needs at least {minimum}",
            help="enroll recordings of normal operation first: `edgeasd enroll FILE...` or "
            "`edgeasd enroll --next N` while the daemon runs",
        )


#: Names that live in :mod:`edgeasd.enrollment_files` (imported on first use: that module
#: imports this one).
_FILE_NAMES = (
    "DEFAULT_MAX_REQUEST_SECONDS",
    "enroll_files_direct",
    "file_batches",
    "file_windows",
    "iter_file_windows",
)


def __getattr__(name: str) -> Any:
    if name in _FILE_NAMES:
        from edgeasd import enrollment_files

        return getattr(enrollment_files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
