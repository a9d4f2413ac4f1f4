"""The operator's feedback: an alert's episode enrolled as normal of its condition.

``edgeasd feedback ALERT normal`` takes the kept audio of the alert's episode
(:func:`edgeasd.agent.alerts.episode_audio.episode_audio`), embeds its windows with the running
model and enrolls them into the condition of the alerting window's nearest reference, as
groups named ``feedback-<ALERT>-NNN`` (so that the same alert is not enrolled twice while
those references are in the bank). The windows scored above the threshold by definition:
the enrollment guard is passed (the operator confirmed them). The running daemon does this
without stopping monitoring (:mod:`edgeasd.agent.control.commands`); without a daemon
:func:`feedback_direct` does it on the bank file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.agent.alerts.episode_audio import EpisodeAudio, episode_audio
from edgeasd.agent.enrollment.batch import Batch
from edgeasd.agent.enrollment.enroll import chunk_windows
from edgeasd.agent.enrollment.windows import embed_windows
from edgeasd.errors import InputError

if TYPE_CHECKING:
    from edgeasd.config import Config
    from edgeasd.config.paths import Paths
    from edgeasd.interfaces import Embedder
    from edgeasd.scoring import ReferenceBank

#: The labels ``edgeasd feedback`` takes (only ``normal`` so far: the alert was a false alarm).
LABELS = ("normal",)


def check_label(label: Any) -> str:
    """Refuse a feedback label other than :data:`LABELS`."""
    if label not in LABELS:
        raise InputError(
            f"feedback label {str(label)[:40]!r} is not known",
            help="say `edgeasd feedback ALERT normal` for an alert that was a false alarm",
        )
    return str(label)


def logged_events(paths: Paths) -> Iterable[dict[str, Any]]:
    """The events of ``alerts.jsonl`` (and its rotated files), for telling gone from unknown."""
    from edgeasd.agent.alerts.event_log import read_events

    try:
        yield from read_events(paths.alerts_log)
    except OSError:
        return


def load_episode(paths: Paths, alert: str) -> EpisodeAudio:
    """The kept audio of alert ``alert`` (errors name an unknown id or gone audio)."""
    return episode_audio(paths.alert_audio_dir, alert, logged_events(paths))


def group_prefix(alert: str) -> str:
    """The prefix of the group ids an alert's feedback enrolls."""
    return f"feedback-{alert}-"


def refuse_repeat(bank: ReferenceBank, alert: str) -> None:
    """Refuse feedback on an alert whose episode the bank already holds."""
    prefix = group_prefix(alert)
    groups = np.asarray(bank.groups_).astype(str)
    held = sorted({g for g in groups.tolist() if g.startswith(prefix)})
    if held:
        raise InputError(
            f"alert {alert} was already enrolled as normal (group {held[0]}, "
            f"{int(np.sum(groups == held[0]))} references)",
            help="nothing to do; `edgeasd bank list` shows its references",
        )


def feedback_batches(
    episode: EpisodeAudio, embedder: Embedder, window_seconds: float, group_seconds: float
) -> list[Batch]:
    """Embed an episode's windows into batches of its condition (one group per minute).

    Raises
    ------
    InputError
        The kept audio is at another sample rate than the model's, or of another length
        than its window.
    """
    info = embedder.info
    if episode.sample_rate != info.sample_rate:
        raise InputError(
            f"the kept audio of alert {episode.alert_id} is at {episode.sample_rate} Hz, "
            f"the model at {info.sample_rate} Hz (the model changed since the alert)",
            help="enroll recordings of that condition instead (`edgeasd enroll`)",
        )
    size = round(window_seconds * info.sample_rate)
    windows = [np.asarray(x[:size], dtype=np.float32) for x in episode.samples if x.size >= size]
    if not windows:
        raise InputError(f"the kept audio of alert {episode.alert_id} holds no whole window")
    starts = [float(r["unix_time"]) for r in episode.records][: len(windows)]
    embeddings = embed_windows(embedder, windows)
    batches = []
    for n, chunk in enumerate(chunk_windows(starts, window_seconds, group_seconds)):
        batches.append(
            Batch(
                embeddings=embeddings[chunk],
                domain=episode.domain,
                group=f"{group_prefix(episode.alert_id)}{n:03d}",
                segments=[windows[i] for i in chunk],
                sample_rate=info.sample_rate,
                origin=f"alert {episode.alert_id}",
                window_starts=tuple(starts[i] for i in chunk),
            )
        )
    return batches


def describe(episode: EpisodeAudio) -> dict[str, Any]:
    """The feedback's own fields in its result and event."""
    out: dict[str, Any] = {
        "alert_id": episode.alert_id,
        "condition": episode.domain,
        "windows": len(episode.records),
    }
    if episode.missing_first:
        out["note"] = "the alerting window's audio is gone; the rest of its episode was enrolled"
    return out


def feedback_direct(config: Config, paths: Paths, alert: str, embedder: Embedder) -> dict:
    """Enroll an alert's episode as normal straight into the bank file (no daemon running).

    Returns
    -------
    dict
        The enrollment result (:func:`edgeasd.agent.enrollment.enroll.enrollment_result`)
        with the feedback's fields (:func:`describe`).
    """
    from edgeasd.agent.alerts import decision
    from edgeasd.agent.enrollment.bank_lifecycle import open_bank
    from edgeasd.agent.enrollment.enroll import commit, enrollment_result
    from edgeasd.agent.enrollment.kept_audio import AudioStore
    from edgeasd.scoring import store

    episode = load_episode(paths, alert)
    window = config.window.seconds or embedder.info.window_seconds
    hop = config.window.hop_seconds or window
    batches = feedback_batches(episode, embedder, window, config.enrollment.group_seconds)
    cfg = config.enrollment
    audio = AudioStore(paths.audio_dir, cfg.audio_max_bytes) if cfg.keep_audio else None
    with store.locked(paths.bank):
        bank = open_bank(paths.bank, config.scoring, embedder.info)
        refuse_repeat(bank, alert)
        ids = commit(bank, paths.bank, batches, audio)
    state = decision.bank_state(bank, config, hop)
    result = {**enrollment_result(bank, batches, ids, state), **describe(episode)}
    if audio is not None:
        result["warnings"] = list(result.get("warnings") or []) + list(audio.warnings)
    return result
