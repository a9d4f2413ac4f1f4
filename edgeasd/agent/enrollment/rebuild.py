"""``edgeasd bank rebuild``: re-embed the kept enrollment audio; never drop a reference silently.

The bank's groups are the unit: each group of the current bank is

* **re-embedded** from its kept audio (:mod:`edgeasd.agent.enrollment.kept_audio`) when that
  audio is there and readable;
* otherwise **carried** with its stored embeddings when the bank was embedded with the
  configured model (audio deleted by ``enrollment.audio_max_bytes``, a full disk or a kill
  while it was written, a corrupt FLAC or sidecar): it is named in the report;
* otherwise (another model: the stored embeddings cannot be compared with new ones) the
  rebuild is **refused**, naming the groups, unless ``--drop-unkept`` asks to drop them,
  which the report names too.

Kept audio of a group the bank does not hold is skipped and named: a *pending* sidecar is
an enrollment whose bank save never happened (never acknowledged), a confirmed one a group
removed from the bank or enrolled after a restored generation. Without any bank file, every
confirmed group of kept audio is used. A corrupt sidecar or FLAC is skipped and named,
never aborting the rebuild.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.agent.enrollment import bank_lifecycle, enroll
from edgeasd.agent.enrollment.batch import Batch
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.agent.enrollment.windows import embed_windows, good_windows
from edgeasd.errors import AudioFileError, BankError
from edgeasd.scoring import load_bank, store

if TYPE_CHECKING:
    from edgeasd.config import Config
    from edgeasd.interfaces import Embedder


@dataclass
class RebuildReport:
    """What a rebuild did, group by group (names, for the operator)."""

    reembedded: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<file or group>: why"
    references: int = 0
    previous: int | None = None

    def lines(self) -> list[str]:
        """Human-readable lines: every carried, dropped and skipped item named."""
        out = []
        for what, names in (
            ("kept without audio (stored embeddings carried over)", self.carried),
            ("DROPPED (--drop-unkept)", self.dropped),
        ):
            if names:
                out.append(f"{len(names)} group(s) {what}: {', '.join(names)}")
        out += [f"skipped {item}" for item in self.skipped]
        return out


def _reembed(
    audio: AudioStore, record: dict[str, Any], embedder: Any, hop: float | None, quality: dict
) -> np.ndarray | None:
    """Embeddings of one kept group's windows at the model's rate (None: no window)."""
    from edgeasd.audio.resample import resample

    info = embedder.info
    windows = []
    for segment in audio.segments(record):
        rate = record["sample_rate"]
        samples = segment if rate == info.sample_rate else resample(segment, rate, info.sample_rate)
        good, _ = good_windows(
            samples, info.sample_rate, info.window_seconds, hop or info.window_seconds, quality
        )
        windows += [w.samples for w in good]
    return embed_windows(embedder, windows) if windows else None


def rebuild(
    config: Config,
    bank_path: Path,
    audio: AudioStore,
    embedder: Embedder,
    quality: dict[str, Any],
    *,
    drop_unkept: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> RebuildReport:
    """Rebuild the bank at ``bank_path`` from the kept audio (see the module docstring).

    Parameters
    ----------
    config : edgeasd.config.Config
    bank_path : Path
    audio : AudioStore
    embedder : edgeasd.embedding.onnx.Embedder
        The configured model.
    quality : dict
        The ``quality`` section as keyword arguments.
    drop_unkept : bool
        Drop the groups without usable audio that cannot be carried (or all of them).
    progress : callable
        Receives one line per group as it is processed.

    Returns
    -------
    RebuildReport

    Raises
    ------
    BankError
        Groups without usable audio under another model and no ``drop_unkept`` (they are
        named), or nothing at all to rebuild from.
    BankCorruptError
        The current bank does not load (restore a backup generation first).
    """
    info = embedder.info
    hop = config.window.hop_seconds
    report = RebuildReport()
    for name in audio.clean_staged():
        report.skipped.append(f"{name}: staged audio of an enrollment killed before its commit")
    records = {r["group"]: r for r in audio.records()}
    report.skipped += [f"{name}: {why}" for name, why in audio.problems]
    old = load_bank(bank_path) if bank_path.exists() else None
    same_model = old is not None and old.meta.get("model_id") == info.id and old.dim == info.dim
    if old is not None:
        report.previous = len(old)
        groups = list(dict.fromkeys(old.groups_.tolist()))  # bank order
        for g in sorted(set(records) - set(groups)):
            why = (
                "its enrollment was never saved to the bank (killed before the save)"
                if records[g].get("pending")
                else "the bank holds no reference of this group"
            )
            report.skipped.append(f"kept audio of group {g}: {why}")
    else:
        groups = [g for g, r in records.items() if not r.get("pending")]
    batches, unkept = [], []
    for number, g in enumerate(groups, 1):
        step = f"group {number} of {len(groups)}"
        embeddings = None
        if g in records:
            try:
                embeddings = _reembed(audio, records[g], embedder, hop, quality)
                if embeddings is None:
                    report.skipped.append(f"kept audio of group {g}: no usable window")
            except AudioFileError as exc:
                report.skipped.append(f"kept audio of group {g}: {exc.message}")
        if embeddings is not None:
            r = records[g]
            domain, origin = r["domain"], r.get("origin", "")
            report.reembedded.append(g)
            progress(f"{step} ({g}): re-embedded, {len(embeddings)} references")
        elif old is not None:
            mask = old.groups_ == g
            domain, origin = str(old.domains_[mask][0]), "bank"
            if same_model and not drop_unkept:
                embeddings = old.embeddings_[mask].astype(np.float32)
                report.carried.append(g)
                progress(
                    f"{step} ({g}): no kept audio, its {len(embeddings)} stored embeddings kept"
                )
            else:
                unkept.append(g)
                continue
        else:
            continue
        batches.append(Batch(embeddings, domain, g, [], info.sample_rate, origin or ""))
    if unkept and not drop_unkept:
        raise BankError(
            f"{len(unkept)} group(s) of the bank have no usable kept audio and were embedded "
            f"with another model ({old.meta.get('model_id') if old else '?'}), so they cannot "
            f"be carried over: {', '.join(unkept)}",
            help="drop them explicitly with `edgeasd bank rebuild --drop-unkept`, or configure "
            "the previous model again; nothing was changed",
        )
    report.dropped = unkept
    if not batches:
        raise BankError(
            "no kept audio yields a window for the configured model, and no reference can "
            "be carried over",
            help="enroll normal recordings again (enrollment.keep_audio keeps them for the "
            "next rebuild)",
        )
    with store.locked(bank_path):
        if bank_path.exists():
            shutil.copy2(bank_path, bank_path.with_name("bank.before-rebuild"))
        # new ids above every id ever issued: alert records and old sidecars name the old ones
        bank = store.continue_ids(bank_lifecycle.new_bank(config.scoring, info), bank_path)
        ids = enroll.commit(bank, bank_path, batches, None, config.scoring.max_references)
    start = 0
    for b in batches:
        if b.group in report.reembedded:
            try:
                audio.update_ids(b.group, ids[start : start + len(b.embeddings)])
            except (OSError, ValueError) as exc:
                report.skipped.append(f"sidecar of group {b.group}: ids not updated ({exc})")
        start += len(b.embeddings)
    report.references = len(bank)
    return report
