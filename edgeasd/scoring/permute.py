"""Crash-safe rearrangement of a few files by content: a journal and moves that keep a copy.

``bank restore`` swaps the bank with one of its backups and shifts the others
(:func:`edgeasd.scoring.generations.restore`). Done with plain renames, a kill in the
middle would leave one version under no name. Here every step is an atomic replace of one
file (``link`` to a temporary name, then ``rename``; a copy where hard links are not
supported), and a step may only overwrite a file whose content is also held by another
file (or is wanted nowhere). So at every instant each version exists under some name.

Before the first step, :func:`rearrange` writes a journal ``<anchor>.restoring`` (JSON:
the SHA-256 of every slot before and after). A run that was killed is finished or undone
by :func:`recover` under the same lock: forward when the anchor file already holds its new
content, back otherwise. A deadlock (every slot holds the only copy of a version another
slot needs: a cycle) is broken by a scratch copy ``<anchor>.restoring-<n>``, removed at
the end.

Nothing here knows what a bank is; the caller holds the anchor's write lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from edgeasd.atomic import temp_path, write_bytes_atomic

#: Slot name -> SHA-256 hex of the content it holds (None: no file).
Layout = dict[str, str | None]


def journal_path(anchor: Path) -> Path:
    """The journal of an interrupted rearrangement around ``anchor``."""
    return anchor.with_name(anchor.name + ".restoring")


def digest(path: Path) -> str | None:
    """SHA-256 hex of the file's bytes, None when it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def layout(anchor: Path, names: list[str]) -> Layout:
    """The content of each slot (file names in ``anchor``'s folder)."""
    return {name: digest(anchor.with_name(name)) for name in names}


def _scratches(anchor: Path) -> list[Path]:
    return sorted(anchor.parent.glob(f"{anchor.name}.restoring-*"))


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(src: Path, dst: Path) -> None:
    """Replace ``dst`` by ``src``'s content atomically, keeping ``src``."""
    tmp = temp_path(dst)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links here: copy (atomic, fsynced)
        write_bytes_atomic(dst, src.read_bytes(), fsync=True)
        return
    try:
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _spare(now: str | None, held: Counter, wanted: Counter) -> bool:
    """May a slot holding ``now`` be overwritten (another copy exists, or nobody wants it)?"""
    return now is None or held[now] > 1 or now not in wanted


def _settle(anchor: Path, target: Layout) -> None:
    """Move contents until every slot holds its ``target``; no version ever loses its last copy."""
    folder = anchor.parent
    files = {name: folder / name for name in target}
    state: dict[Path, str | None] = {p: digest(p) for p in files.values()}
    state.update({p: digest(p) for p in _scratches(anchor)})
    wanted = Counter(v for v in target.values() if v is not None)
    for _ in range(4 * len(target) + 4):  # each pass fixes a slot or adds one scratch copy
        held = Counter(v for v in state.values() if v is not None)
        pending = [n for n in target if state[files[n]] != target[n]]
        if not pending:
            break
        movable = [n for n in pending if _spare(state[files[n]], held, wanted)]
        if movable:
            name = movable[0]
            dst, want = files[name], target[name]
            if want is None:
                dst.unlink(missing_ok=True)
            else:
                src = next(p for p, v in state.items() if v == want)
                _place(src, dst)
            state[dst] = want
        else:  # a cycle: copy one slot's only version aside
            src = files[pending[0]]
            scratch = anchor.with_name(f"{anchor.name}.restoring-{len(_scratches(anchor))}")
            _place(src, scratch)
            state[scratch] = state[src]
        _sync_dir(folder)
    else:  # pragma: no cover - the loop bound is generous; this is a bug guard
        raise RuntimeError(f"could not rearrange the files around {anchor}")
    for scratch in _scratches(anchor):  # every version now has its target slot
        scratch.unlink(missing_ok=True)


def rearrange(anchor: Path, before: Layout, after: Layout) -> None:
    """Bring the slots from ``before`` (their current contents) to ``after``, crash-safe.

    ``after`` must hold exactly the versions of ``before`` (a permutation; slots may be
    added or emptied). The journal is written first and removed last.

    Raises
    ------
    ValueError
        ``after`` would drop or invent a version.
    OSError
        The folder is not writable or full (the journal lets :func:`recover` undo it).
    """
    have = Counter(v for v in before.values() if v is not None)
    if set(have) != {v for v in after.values() if v is not None} or set(before) != set(after):
        raise ValueError("a rearrangement must keep every version and the same slots")
    journal = journal_path(anchor)
    write_bytes_atomic(
        journal, json.dumps({"before": before, "after": after}).encode(), sync_dir=True
    )
    _settle(anchor, after)
    journal.unlink()
    _sync_dir(anchor.parent)


def recover(anchor: Path) -> str | None:
    """Finish or undo a rearrangement that was killed; the caller holds the lock.

    Forward when ``anchor`` already holds its new content (the last visible step),
    back to the old layout otherwise.

    Returns
    -------
    str or None
        ``"finished"``, ``"undone"``, or None when there was nothing to recover.
    """
    journal = journal_path(anchor)
    try:
        plan = json.loads(journal.read_text())
        before, after = dict(plan["before"]), dict(plan["after"])
    except FileNotFoundError:
        for scratch in _scratches(anchor):  # killed before its journal was written
            scratch.unlink(missing_ok=True)
        return None
    except (OSError, ValueError, KeyError, TypeError):  # written atomically: edited by hand
        return None
    forward = digest(anchor) == after.get(anchor.name)
    _settle(anchor, after if forward else before)
    journal.unlink()
    _sync_dir(anchor.parent)
    return "finished" if forward else "undone"
