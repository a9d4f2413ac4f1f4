"""Crash-safe on-disk format of a reference bank: ``save_bank``, ``load_bank``, ``transaction``.

File format (one file, version :data:`FORMAT_VERSION`; no pickle anywhere)::

    b"EDGEASD-BANK\\n"            magic, 13 bytes
    uint64 little-endian        length H of the header
    H bytes                     UTF-8 JSON header: format, bank parameters, names,
                                meta, calibration settings, and for every array its
                                name, dtype (whitelisted), shape, offset and size
    payload                     the raw little-endian array bytes, back to back
    32 bytes                    SHA-256 of everything before it

Loading verifies the length and the checksum before parsing anything, so a
truncated or corrupt file raises :class:`~edgeasd.errors.BankCorruptError` naming
the file and never yields partial data.

Saving is atomic: the bytes go to a temporary file in the same directory, which is
fsync'ed, renamed over the target (``os.replace``), and the directory is fsync'ed.
A crash at any point leaves either the old or the new file; an enrollment whose
``save_bank`` returned is on disk. Writers hold an exclusive ``fcntl.flock`` on the
sibling ``<file>.lock``; readers need no lock. The lock is re-entrant within a
process, so ``save_bank(bank, path)`` inside ``with locked(path):`` does not deadlock
(the lock and the atomic write are :mod:`edgeasd.scoring.fileio`'s, re-exported here).

Persistence sits above the bank: this module imports :mod:`~edgeasd.scoring.bank` (through
:mod:`~edgeasd.scoring.serialize`), never the reverse.

Typical read-modify-write by another process (e.g. ``edgeasd enroll`` while the
daemon is stopped)::

    with store.transaction(path) as bank:     # locks, loads, saves on success
        bank.enroll(X, group="recording-7")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgeasd.errors import BankCorruptError, BankError, InputError
from edgeasd.scoring import generations
from edgeasd.scoring.bank import ReferenceBank
from edgeasd.scoring.fileio import fingerprint, lock_path, locked, write_atomic
from edgeasd.scoring.serialize import from_state, to_state

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "backups",
    "continue_ids",
    "decode",
    "encode",
    "fingerprint",
    "load_bank",
    "lock_path",
    "locked",
    "restore",
    "save_bank",
    "transaction",
    "write_atomic",
]

MAGIC = b"EDGEASD-BANK\n"
FORMAT_VERSION = 1
_DTYPES = {"<f4", "<f8", "<i8"}
_HELP_CORRUPT = "restore the bank from a backup or enroll normal recordings again"
_ARRAY_KEYS = ("name", "dtype", "shape", "offset", "nbytes")


@contextlib.contextmanager
def transaction(
    path: str | Path, create: Callable[[], ReferenceBank] | None = None, timeout: float = 10.0
) -> Iterator[ReferenceBank]:
    """Locked read-modify-write: load (or ``create()``), yield, save if no exception.

    Raises
    ------
    BankError
        The file does not exist and no ``create`` was given.
    """
    with locked(path, timeout):
        if Path(path).exists():
            bank = load_bank(path, spare=True)  # it is about to grow
        elif create is not None:
            bank = create()
        else:
            raise BankError(
                f"no reference bank at {path}", help="enroll normal recordings first to create one"
            )
        yield bank
        save_bank(bank, path)


def encode(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """Serialize a JSON header and arrays into the file format (checksum included)."""
    specs, offset, chunks = [], 0, []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        arr = arr.astype(dt, copy=False)
        if dt.str not in _DTYPES:
            raise InputError(f"array {name} has unsupported dtype {dt.str}")
        data = arr.tobytes()
        specs.append(
            {
                "name": name,
                "dtype": dt.str,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": len(data),
            }
        )
        offset += len(data)
        chunks.append(data)
    try:
        head = json.dumps(
            {**header, "format": FORMAT_VERSION, "arrays": specs}, allow_nan=True
        ).encode()
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"bank meta is not JSON-serializable: {exc}",
            help="store only str/int/float/bool/list/dict values in bank.meta",
        ) from None
    body = b"".join([MAGIC, len(head).to_bytes(8, "little"), head, *chunks])
    return body + hashlib.sha256(body).digest()


def decode(blob: bytes | bytearray, name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Verify and parse what :func:`encode` wrote; ``name`` is used in errors.

    The arrays are copies, unless ``blob`` is a ``bytearray``: then they are views of it
    (writable, no copy).
    """

    def corrupt(why: str) -> BankCorruptError:
        return BankCorruptError(f"bank file {name} is corrupt: {why}", help=_HELP_CORRUPT)

    if len(blob) < len(MAGIC) + 8 + 32 or not blob.startswith(MAGIC):
        raise corrupt("not an edgeasd bank file, or truncated")
    if hashlib.sha256(memoryview(blob)[:-32]).digest() != bytes(blob[-32:]):
        raise corrupt("checksum mismatch (truncated or modified)")
    hlen = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    try:
        header = json.loads(blob[start : start + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(f"unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise corrupt(f"malformed header (a JSON {type(header).__name__}, not an object)")
    if header.get("format") != FORMAT_VERSION:
        raise BankCorruptError(
            f"bank file {name} has format {header.get('format')!r}; this "
            f"edgeasd reads format {FORMAT_VERSION}",
            help="upgrade edgeasd or rebuild the bank",
        )
    payload = memoryview(blob)[start + hlen : len(blob) - 32]
    arrays = {}
    try:  # a valid checksum over a malformed header (hand-edited, another writer's bug)
        for spec in header["arrays"]:
            if not isinstance(spec, dict) or any(k not in spec for k in _ARRAY_KEYS):
                raise corrupt(f"malformed header: array entry {spec!r:.80} lacks {_ARRAY_KEYS}")
            if spec["dtype"] not in _DTYPES:
                raise corrupt(f"array {spec['name']} has unsupported dtype {spec['dtype']}")
            dt = np.dtype(spec["dtype"])
            shape = [int(d) for d in spec["shape"]]
            offset, nbytes = int(spec["offset"]), int(spec["nbytes"])
            count = int(np.prod(shape, dtype=np.int64))
            if min([offset, nbytes, *shape]) < 0:
                raise corrupt(f"array {spec['name']} has a negative offset, size or shape")
            if offset + nbytes > len(payload) or count * dt.itemsize != nbytes:
                raise corrupt(f"array {spec['name']} does not fit the payload")
            raw = payload[offset : offset + nbytes]
            arr = np.frombuffer(raw, dt, count).reshape(shape)
            arrays[str(spec["name"])] = arr if isinstance(blob, bytearray) else arr.copy()
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise corrupt(f"malformed header ({type(exc).__name__}: {exc})") from None
    return header, arrays


def save_bank(bank: ReferenceBank, path: str | Path, timeout: float = 10.0) -> None:
    """Write ``bank`` to the file ``path`` under the lock (waiting up to ``timeout`` s)."""
    header, arrays = to_state(bank)
    data = encode(header, arrays)
    with locked(path, timeout):
        generations.rotate(path)  # the last GENERATIONS versions stay as backups
        generations.raise_next_id(path, bank.references_.next_id)  # ids are never reused
        write_atomic(path, data)


def load_bank(path: str | Path, hint: bool = True, spare: bool = False) -> ReferenceBank:
    """Read and verify a bank file.

    Parameters
    ----------
    path : str or Path
    hint : bool
        On corruption, name the newest good automatic backup and the command restoring
        it in the error's help (see :mod:`edgeasd.scoring.generations`).
    spare : bool
        Keep spare rows (:func:`edgeasd.scoring.references.spare_rows`) for a bank about to
        grow (:func:`transaction`, the daemon): its next enrollment then copies nothing.
        Without, the arrays are the file's buffer itself (no copy: read-only commands
        answer fast); a first enrollment then grows them.

    Raises
    ------
    BankError
        The file does not exist or cannot be read.
    BankCorruptError
        Truncated, corrupt, inconsistent or of another format version.
    """
    try:
        with open(path, "rb") as fh:  # into a writable buffer: the arrays are views of it
            blob = bytearray(os.fstat(fh.fileno()).st_size)
            if fh.readinto(blob) != len(blob):
                raise OSError(0, "the file changed while it was read")
    except FileNotFoundError:
        raise BankError(
            f"no reference bank at {path}", help="enroll normal recordings first to create one"
        ) from None
    except OSError as exc:
        raise BankError(f"cannot read the bank file {path}: {exc.strerror}") from None
    try:
        header, arrays = decode(blob, str(path))
        try:
            bank = from_state(header, arrays, spare)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise BankCorruptError(
                f"bank file {path} is inconsistent: {exc!r}", help=_HELP_CORRUPT
            ) from None
    except BankCorruptError as exc:
        if hint and exc.help == _HELP_CORRUPT:
            exc.help = generations.corrupt_help(path, _summarize)
        raise
    # ids of versions restored over, or of removed references, are never issued again
    data = bank.references_
    data.next_id = max(data.next_id, generations.next_id_floor(path))
    return bank


def continue_ids(bank: ReferenceBank, path: str | Path) -> ReferenceBank:
    """Make a new ``bank`` that will replace the one at ``path`` issue only unused ids.

    For a bank built from scratch (``bank rebuild``): its first reference gets an id above
    every id the bank at ``path``, its generations and its restores ever issued. Returns
    ``bank``.
    """
    floor = generations.next_id_floor(path)
    with contextlib.suppress(BankError):  # also a bank saved before the id mark existed
        floor = max(floor, load_bank(path, hint=False).references_.next_id)
    data = bank.references_
    data.next_id = max(data.next_id, floor)
    return bank


def _summarize(path: Path) -> generations.Contents:
    """What the bank file ``path`` holds (no backup hint: used on the backups)."""
    bank = load_bank(path, hint=False)
    domains, groups, added = bank.domains_, bank.groups_, bank.added_at_
    names, counts = np.unique(domains, return_counts=True)
    last = int(np.argmax(added)) if len(bank) else None
    threshold = bank.calibration_.threshold
    return generations.Contents(
        references=len(bank),
        conditions={str(n): int(c) for n, c in zip(names, counts, strict=True)},
        threshold=None if not np.isfinite(threshold) else float(threshold),
        last_group=None if last is None else str(groups[last]),
        last_group_references=0 if last is None else int(np.sum(groups == groups[last])),
        last_group_condition=None if last is None else str(domains[last]),
        last_enrolled=None if last is None else float(added[last]),
        next_id=int(bank.references_.next_id),
    )


def backups(path: str | Path) -> list[generations.Generation]:
    """The automatic backups of the bank at ``path``, newest first, each checked by loading."""
    return generations.generations(path, _summarize)


def restore(path: str | Path, generation: int) -> generations.Generation:
    """Put backup ``generation`` of the bank at ``path`` back; the replaced bank becomes
    generation 1 (see :func:`generations.restore`)."""
    return generations.restore(path, generation, _summarize)
