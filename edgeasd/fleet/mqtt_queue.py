"""A bounded, crash-safe on-disk FIFO for the MQTT sink's store-and-forward.

Events wait here until the broker acknowledged them (QoS 1 ``PUBACK``); a broker outage
or a daemon restart in between loses nothing. The queue is one SQLite database in WAL
mode with ``synchronous=FULL``: every :meth:`DiskQueue.put` is a transaction that has
reached the disk (``fsync``) when it returns, and a process killed mid-write leaves the
last committed state, never a torn record. SQLite rather than append-only segment files
because the drop policy deletes from the *middle* (the oldest non-alert message, while
older alerts stay), which segments could only do by rewriting them, and because
atomic commit and recovery come with the standard library instead of a home-made
framing-and-checksum format.

Each message gets a sequence number (SQLite ``AUTOINCREMENT``: strictly increasing and
never reused, also across restarts), which the sink puts in the published payload so
that a subscriber can drop the duplicates at-least-once delivery may bring.

Size cap: when the stored payloads exceed ``max_bytes``, the oldest non-alert messages
are dropped first; only a queue holding nothing but alerts drops its oldest alert. Each
drop is counted (:attr:`DiskQueue.dropped`, by kind) and logged.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgeasd.errors import InputError
from edgeasd.filemode import DIR_MODE, FILE_MODE, create_file

log = logging.getLogger(__name__)

_WAL_LIMIT = 2**20
#: Dropped non-alert messages are logged at most this often (a full queue during a long
#: outage would otherwise log every event); dropped alerts are always logged.
DROP_LOG_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""


@dataclass(frozen=True)
class Message:
    """One queued message.

    Attributes
    ----------
    seq : int
        Its sequence number (increasing in queue order).
    kind : str
        The event kind (``alert``, ``recovered``, ``signal``, ``enrolled``...).
    topic : str
    payload : bytes
    """

    seq: int
    kind: str
    topic: str
    payload: bytes


class DiskQueue:
    """A size-capped FIFO of MQTT messages in a SQLite file, safe from several threads.

    Parameters
    ----------
    path : path-like
        The database file; its folder is created if missing.
    max_bytes : int
        Most payload bytes kept (``>= 1``); beyond it messages are dropped, oldest
        non-alert first.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes < 1:
            raise InputError(f"max_bytes must be >= 1, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        # event payloads: 0640 under any umask (SQLite gives -wal and -shm the database's mode)
        for name in ("", "-wal", "-shm"):
            suffixed = self.path.with_name(self.path.name + name)
            if not name or suffixed.exists():
                create_file(suffixed, FILE_MODE)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # fsync at every commit
        # Bound the write-ahead log too: by default it grows to 1000 pages (4 MiB) before a
        # checkpoint and keeps that size. Checkpoint every 256 pages (1 MiB) and truncate it
        # back to 1 MiB: measured with 200-byte events, the files then stay within
        # about 1.5 x max_bytes + 1.1 MiB (test_mqtt_queue.py).
        self._db.execute("PRAGMA wal_autocheckpoint=256")
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        self._db.execute(_SCHEMA)
        self.dropped: Counter[str] = Counter()
        self._drop_logged = -math.inf
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages")
        self._count, self._bytes = (int(v) for v in row.fetchone())

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Payload bytes queued."""
        return self._bytes

    def put(self, kind: str, topic: str, payload: bytes) -> int:
        """Append a message (durable on return); returns its sequence number.

        Drops the oldest messages beyond ``max_bytes`` (see the module docstring).
        """
        with self._lock:
            count, nbytes = self._count, self._bytes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO messages (kind, topic, payload) VALUES (?, ?, ?)",
                    (kind, topic, payload),
                )
                self._count += 1
                self._bytes += len(payload)
                dropped = self._trim() if self._bytes > self.max_bytes else Counter()
                self._db.execute("COMMIT")  # one fsync'ed transaction: insert and trim
            except BaseException:
                self._db.execute("ROLLBACK")
                self._count, self._bytes = count, nbytes
                raise
            self.dropped.update(dropped)
            if dropped:
                self._log_drops(dropped)
            return int(cur.lastrowid)

    def _log_drops(self, dropped: Counter[str]) -> None:
        now = time.monotonic()
        if not dropped["alert"] and now - self._drop_logged < DROP_LOG_SECONDS:
            return
        self._drop_logged = now
        level = logging.ERROR if dropped["alert"] else logging.WARNING
        log.log(
            level,
            "MQTT queue full (%d bytes): dropped the oldest %s; dropped since start: %s",
            self.max_bytes,
            ", ".join(f"{n} {kind}" for kind, n in sorted(dropped.items())),
            ", ".join(f"{n} {kind}" for kind, n in sorted(self.dropped.items())),
        )

    def _trim(self) -> Counter[str]:
        """Drop messages, oldest non-alert first, until the payloads fit ``max_bytes``.

        Returns the number dropped per kind.
        """
        rows = self._db.execute(
            "SELECT seq, kind, LENGTH(payload) FROM messages ORDER BY kind = 'alert', seq"
        ).fetchall()
        newest = max(row[0] for row in rows)
        gone: list[int] = []
        dropped: Counter[str] = Counter()
        for seq, kind, size in rows:
            if self._bytes <= self.max_bytes:
                break
            if seq == newest:  # the message just put always stays
                continue
            gone.append(seq)
            self._bytes -= size
            self._count -= 1
            dropped[kind] += 1
        self._db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in gone])
        return dropped

    def peek(self) -> Message | None:
        """The oldest message, left in the queue (None: empty)."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, kind, topic, payload FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
        return None if row is None else Message(int(row[0]), row[1], row[2], bytes(row[3]))

    def ack(self, seq: int) -> None:
        """Remove a delivered message (no-op if it was dropped meanwhile)."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM messages WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
            )
            row = cur.fetchone()
            cur.close()
            if row is not None:
                self._count -= 1
                self._bytes -= int(row[0])

    def close(self) -> None:
        """Close the database (everything put is already on disk)."""
        with self._lock:
            self._db.close()
