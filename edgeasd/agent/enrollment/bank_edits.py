"""Removing references and restoring a backup generation: what the daemon and the CLI share.

The running daemon applies both in its run loop (the thread that owns the bank), so
monitoring goes on with the changed bank at the next window; with no daemon running,
``edgeasd bank remove`` / ``bank restore`` apply them to the bank file directly. Backup
generations and their rotation are :mod:`edgeasd.scoring.generations` (through
:func:`edgeasd.scoring.store.restore`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeasd.agent.enrollment.bank_lifecycle import bank_summary
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.errors import BankError, InputError
from edgeasd.scoring import ReferenceBank, save_bank, store


def check_ids(ids: Any) -> list[int]:
    """Refuse a removal request that is not a non-empty list of reference ids."""
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise InputError(
            "bank remove needs one or more reference ids (integers)",
            help="see the ids with `edgeasd bank list`",
        )
    return [int(i) for i in ids]


def remove_references(
    bank: ReferenceBank, path: Path, ids: Sequence[int], audio: AudioStore | None
) -> dict[str, Any]:
    """Remove references ``ids`` from ``bank``, save it, and forget their kept audio.

    The caller owns the bank (the daemon's run loop, or ``store.locked(path)``).

    Returns
    -------
    dict
        ``removed`` (the ids), ``bank_size`` and ``domains`` after the removal.

    Raises
    ------
    BankError
        An id the bank does not hold (nothing is removed).
    """
    ids = check_ids(list(ids))
    missing = sorted(set(ids) - {int(i) for i in bank.ids_})
    if missing:
        raise BankError(
            f"no reference with id(s) {missing} in {path}; nothing was removed",
            help="see the ids with `edgeasd bank list`",
        )
    bank.remove(ids)
    save_bank(bank, path)
    if audio is not None:
        audio.forget(ids)
    return {"removed": sorted(set(ids)), "bank_size": len(bank), "domains": bank_summary(bank)}


def check_generation(generation: Any) -> int:
    """Refuse a generation that is not a positive integer."""
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise InputError(
            f"a backup generation is 1 (the newest), 2, ..., not {generation!r}",
            help="list them with `edgeasd bank restore`",
        )
    return generation


def restore_generation(path: Path, generation: int) -> dict[str, Any]:
    """Put backup ``generation`` back as the bank file (:func:`edgeasd.scoring.store.restore`).

    Returns
    -------
    dict
        ``generation`` and ``restored`` (its description).

    Raises
    ------
    BankError
        No such generation (its message lists those that exist), or it does not load.
    """
    chosen = store.restore(path, check_generation(generation))
    return {"generation": int(generation), "restored": chosen.describe()}
