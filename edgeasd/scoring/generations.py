"""Automatic backups of the bank (the last :data:`GENERATIONS` versions), ``bank restore``.

Every :func:`edgeasd.scoring.store.save_bank` first shifts ``<bank>.1`` → ``<bank>.2`` →
``<bank>.3`` (the oldest is dropped) and hard-links the current file as ``<bank>.1``, then
atomically replaces the bank. Generation 1 is therefore the bank as it was before the last
save. Rotation costs three renames and a link (no copy), happens under the bank's write
lock, and a crash in the middle leaves the bank itself untouched (at worst one backup slot
empty).

``edgeasd bank restore G`` puts generation G back and makes the replaced bank generation 1;
the generations newer than G move down by one, the older ones stay. A restore therefore
drops no version, and is itself undone by ``restore 1``; "restore 1, no, restore 2" ends
with the old generation 2 as the bank and every other version still listed. The files are
moved by :func:`edgeasd.scoring.permute.rearrange` (a journal, and no step that removes the
last copy of a version), so a kill at any point leaves every version on disk, and the next
locked access (a restore or a save) finishes or undoes it (:func:`recover`).

Reference ids are never reused: ``<bank>.next-id`` holds the next id ever to be issued
(raised by every save and by every restore to the highest of all versions), and
:func:`next_id_floor` is applied when a bank is loaded. Kept audio and alert records name
references by id, so a restored older bank must not hand those ids to new enrollments.

This module works on files: what a backup holds is read by a ``summarize`` function
(raising :class:`~edgeasd.errors.EdgeasdError` if the file does not load) that
:mod:`edgeasd.scoring.store` passes in (:func:`~edgeasd.scoring.store.backups`,
:func:`~edgeasd.scoring.store.restore`), so that persistence layers stay one-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeasd.atomic import write_bytes_atomic
from edgeasd.errors import BankCorruptError, BankError, EdgeasdError
from edgeasd.scoring import permute
from edgeasd.scoring.fileio import locked

#: Backups kept: 3 generations let an operator step back over an enrollment that went wrong
#: and the save that followed it, for 3x the bank's size on disk (a bank of 10,000
#: 196-d references is about 10 MB).
GENERATIONS = 3


def backup_path(path: str | Path, generation: int) -> Path:
    """The file of backup ``generation`` (1 = newest) of the bank at ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.{int(generation)}")


def next_id_path(path: str | Path) -> Path:
    """The file holding the bank's id high-water mark (``<bank>.next-id``)."""
    path = Path(path)
    return path.with_name(path.name + ".next-id")


def next_id_floor(path: str | Path) -> int:
    """The lowest id a new reference of the bank at ``path`` may get (0 when unknown)."""
    try:
        value = json.loads(next_id_path(path).read_text())["next_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return value if isinstance(value, int) and value > 0 else 0


def raise_next_id(path: str | Path, next_id: int) -> None:
    """Record that ids below ``next_id`` are taken (never lowers the mark; caller locks).

    Raises
    ------
    BankError
        The mark cannot be written (disk full, permissions): the save must not go on.
    """
    if next_id <= next_id_floor(path):
        return
    try:
        write_bytes_atomic(
            next_id_path(path), json.dumps({"next_id": int(next_id)}).encode(), sync_dir=True
        )
    except OSError as exc:
        raise BankError(  # part of saving the bank: said as the bank's own write error
            f"cannot write the bank file {path} (its id mark {next_id_path(path).name}): "
            f"{exc.strerror}",
            help="check free disk space and permissions of the bank's directory",
        ) from None


def rotate(path: str | Path) -> None:
    """Shift the backups by one and keep the current bank as generation 1 (before a save).

    The caller holds the bank's write lock. An interrupted restore is finished or undone
    first. Best effort otherwise: a failure leaves the bank intact and is not an error of
    the save.
    """
    path = Path(path)
    recover(path)
    if not path.is_file():
        return
    with contextlib.suppress(OSError):
        backup_path(path, GENERATIONS).unlink(missing_ok=True)
        for g in range(GENERATIONS - 1, 0, -1):
            older = backup_path(path, g)
            if older.exists():
                os.replace(older, backup_path(path, g + 1))
        try:
            os.link(path, backup_path(path, 1))
        except OSError:  # no hard links on this file system: copy
            shutil.copy2(path, backup_path(path, 1))


@dataclass(frozen=True)
class Contents:
    """What one bank file holds, for choosing a version to restore.

    Attributes
    ----------
    references : int
    conditions : dict of str to int
        References per condition (domain tag).
    threshold : float or None
        The stored threshold (None: not calibrated, e.g. a single group).
    last_group : str or None
        The newest enrollment group: the enrollment that made this version, when an
        enrollment did (a removal or restore keeps the newest group of the one before).
    last_group_references : int
    last_group_condition : str or None
        Its condition (domain tag).
    last_enrolled : float or None
        When ``last_group`` was enrolled (UNIX seconds).
    next_id : int
        The id its next reference would have got.
    """

    references: int
    conditions: dict[str, int] = field(default_factory=dict)
    threshold: float | None = None
    last_group: str | None = None
    last_group_references: int = 0
    last_group_condition: str | None = None
    last_enrolled: float | None = None
    next_id: int = 0

    def describe(self) -> str:
        per = ", ".join(f"{name} {n}" for name, n in sorted(self.conditions.items()))
        text = f"{self.references} references" + (f" ({per})" if per else "")
        text += ", threshold " + ("none" if self.threshold is None else f"{self.threshold:.4g}")
        if self.last_group is not None and self.last_enrolled is not None:
            text += (
                f", last enrollment {self.last_group} ({self.last_group_condition}, "
                f"{self.last_group_references} references, {_when(self.last_enrolled)})"
            )
        return text


#: What a bank file holds; raises EdgeasdError when the file does not load.
Summarize = Callable[[Path], Contents]


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@dataclass(frozen=True)
class Generation:
    """One backup of the bank.

    Attributes
    ----------
    generation : int
        1 = newest.
    path : Path
    saved : float
        Modification time (UNIX seconds): when it was the current bank's last save.
    contents : Contents or None
        What it holds, None when the file does not load.
    error : str or None
        Why it does not load.
    """

    generation: int
    path: Path
    saved: float
    contents: Contents | None
    error: str | None

    @property
    def good(self) -> bool:
        return self.error is None

    @property
    def references(self) -> int | None:
        """Number of references, None when the file does not load."""
        return None if self.contents is None else self.contents.references

    def describe(self) -> str:
        what = self.contents.describe() if self.contents else f"unusable: {self.error}"
        return f"generation {self.generation}: saved {_when(self.saved)}, {what}"


def generations(path: str | Path, summarize: Summarize) -> list[Generation]:
    """The backups of the bank at ``path`` that exist, newest first, each read by ``summarize``."""
    out = []
    for g in range(1, GENERATIONS + 1):
        file = backup_path(path, g)
        try:
            saved = file.stat().st_mtime
        except OSError:
            continue
        try:
            contents, error = summarize(file), None
        except EdgeasdError as exc:
            contents, error = None, exc.message
        out.append(Generation(g, file, saved, contents, error))
    return out


def newest_good(path: str | Path, summarize: Summarize) -> Generation | None:
    """The newest backup that loads, or None."""
    return next((g for g in generations(path, summarize) if g.good), None)


def corrupt_help(path: str | Path, summarize: Summarize) -> str:
    """The hint of a corrupt bank: the newest good backup and the command restoring it."""
    good = newest_good(path, summarize)
    if good is None:
        return (
            "no good automatic backup exists: move the corrupt file away and rebuild the "
            "bank from the kept audio (`edgeasd bank rebuild`), or enroll normal recordings "
            "again"
        )
    return (
        f"restore the newest good backup, {good.describe()}: `edgeasd bank restore "
        f"{good.generation}` (`edgeasd bank restore` lists them)"
    )


def recover(path: str | Path) -> str | None:
    """Finish or undo a restore that was killed (the caller holds the bank's write lock).

    Also removes the temporaries that killed writers of the bank, its generations, its id
    mark or a restore's journal left (``.<bank>*.tmp``): under the lock no live writer
    owns one.

    Returns
    -------
    str or None
        ``"finished"``, ``"undone"``, or None when none was interrupted.
    """
    path = Path(path)
    done = permute.recover(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    return done


def restore(path: str | Path, generation: int, summarize: Summarize) -> Generation:
    """Put backup ``generation`` back as the bank; the replaced bank becomes generation 1.

    Generations newer than the chosen one move down by one; none is dropped (see the
    module docstring). The id high-water mark is raised to the highest ``next_id`` of all
    versions first, so that no id of the replaced bank is issued again.

    Returns
    -------
    Generation
        The restored version, as it was listed before the restore.

    Raises
    ------
    BankError
        No such backup, or the folder cannot be written (nothing changed: an interrupted
        rearrangement is undone by the next restore or save).
    BankCorruptError
        The backup does not load either.
    """
    path = Path(path)
    with locked(path):
        recover(path)
        found = generations(path, summarize)
        chosen = next((g for g in found if g.generation == generation), None)
        if chosen is None:
            have = ", ".join(str(g.generation) for g in found) or "none"
            raise BankError(
                f"no backup generation {generation} of {path} (existing: {have})",
                help="list them with `edgeasd bank restore`",
            )
        if not chosen.good or chosen.contents is None:
            raise BankCorruptError(
                f"backup {chosen.path} cannot be restored: {chosen.error}",
                help="pick another generation (`edgeasd bank restore` lists them)",
            )
        marks = [g.contents.next_id for g in found if g.contents is not None]
        with contextlib.suppress(EdgeasdError):
            marks.append(summarize(path).next_id)
        raise_next_id(path, max(marks))
        slots = [path.name] + [backup_path(path, g).name for g in range(1, GENERATIONS + 1)]
        before = permute.layout(path, slots)
        rest = [before[n] for n in slots if n != chosen.path.name and before[n] is not None]
        order = [before[chosen.path.name], *rest]
        after = {n: (order[i] if i < len(order) else None) for i, n in enumerate(slots)}
        try:
            permute.rearrange(path, before, after)
        except OSError as exc:
            raise BankError(
                f"cannot restore generation {generation} of {path}: {exc.strerror or exc}",
                help="check free disk space and permissions of the bank's directory; the "
                "next restore or save puts the files back in order",
            ) from None
    return chosen
