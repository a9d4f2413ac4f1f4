"""Automatic backups of the bank: the last :data:`GENERATIONS` versions before each save.

Every :func:`edgeasd.scoring.store.save_bank` first shifts ``<bank>.1`` → ``<bank>.2`` →
``<bank>.3`` (the oldest is dropped) and hard-links the current file as ``<bank>.1``, then
atomically replaces the bank. Generation 1 is therefore the bank as it was before the last
save. Rotation costs three renames and a link (no copy), happens under the bank's write
lock, and a crash in the middle leaves the bank itself untouched (at worst one backup slot
empty).

``edgeasd bank restore`` lists the generations and puts one back; the error of a corrupt
bank names the newest good one and that command.

This module works on files: whether a backup is good is decided by a ``count`` function
(references in a bank file, raising :class:`~edgeasd.errors.EdgeasdError` if it does not
load) that :mod:`edgeasd.scoring.store` passes in (:func:`~edgeasd.scoring.store.backups`,
:func:`~edgeasd.scoring.store.restore`), so that persistence layers stay one-way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeasd.errors import BankCorruptError, BankError, EdgeasdError
from edgeasd.scoring.fileio import locked, write_atomic

#: References in a bank file; raises EdgeasdError when the file does not load.
Count = Callable[[Path], int]

#: Backups kept: 3 generations let an operator step back over an enrollment that went wrong
#: and the save that followed it, for 3x the bank's size on disk (a bank of 10,000
#: 196-d references is about 10 MB).
GENERATIONS = 3


def backup_path(path: str | Path, generation: int) -> Path:
    """The file of backup ``generation`` (1 = newest) of the bank at ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.{int(generation)}")


def rotate(path: str | Path) -> None:
    """Shift the backups by one and keep the current bank as generation 1 (before a save).

    The caller holds the bank's write lock. Best effort: a failure leaves the bank intact
    and is not an error of the save.
    """
    path = Path(path)
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
class Generation:
    """One backup of the bank.

    Attributes
    ----------
    generation : int
        1 = newest.
    path : Path
    saved : float
        Modification time (UNIX seconds): when it was the current bank's last save.
    references : int or None
        Number of references, None when the file does not load.
    error : str or None
        Why it does not load.
    """

    generation: int
    path: Path
    saved: float
    references: int | None
    error: str | None

    @property
    def good(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.saved))
        what = f"{self.references} references" if self.good else f"unusable: {self.error}"
        return f"generation {self.generation}: saved {when}, {what}"


def generations(path: str | Path, count: Count) -> list[Generation]:
    """The backups of the bank at ``path`` that exist, newest first, each checked by ``count``."""
    out = []
    for g in range(1, GENERATIONS + 1):
        file = backup_path(path, g)
        try:
            saved = file.stat().st_mtime
        except OSError:
            continue
        try:
            refs, error = count(file), None
        except EdgeasdError as exc:
            refs, error = None, exc.message
        out.append(Generation(g, file, saved, refs, error))
    return out


def newest_good(path: str | Path, count: Count) -> Generation | None:
    """The newest backup that loads, or None."""
    return next((g for g in generations(path, count) if g.good), None)


def corrupt_help(path: str | Path, count: Count) -> str:
    """The hint of a corrupt bank: the newest good backup and the command restoring it."""
    good = newest_good(path, count)
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


def restore(path: str | Path, generation: int, count: Count) -> Generation:
    """Put backup ``generation`` back as the bank (the replaced file kept as ``.before-restore``).

    Raises
    ------
    BankError
        No such backup.
    BankCorruptError
        The backup does not load either.
    """
    path = Path(path)
    chosen = next((g for g in generations(path, count) if g.generation == generation), None)
    if chosen is None:
        have = ", ".join(str(g.generation) for g in generations(path, count)) or "none"
        raise BankError(
            f"no backup generation {generation} of {path} (existing: {have})",
            help="list them with `edgeasd bank restore`",
        )
    if not chosen.good:
        raise BankCorruptError(
            f"backup {chosen.path} cannot be restored: {chosen.error}",
            help="pick another generation (`edgeasd bank restore` lists them)",
        )
    with locked(path):
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".before-restore"))
        write_atomic(path, chosen.path.read_bytes())
    return chosen
