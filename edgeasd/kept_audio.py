"""Enrolled audio kept compressed (FLAC) and size-capped, so ``bank rebuild`` can re-embed it.

``<state_dir>/audio/<group>.flac`` holds a group's audio segments back to back and
``<group>.json`` its sidecar (domain, reference ids, origin, segment lengths). When the
folder exceeds ``enrollment.audio_max_bytes`` the oldest groups' audio is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.audio.io import read_audio, write_audio
from edgeasd.errors import AudioFileError
from edgeasd.filemode import DIR_MODE
from edgeasd.status import write_json_atomic

log = logging.getLogger(__name__)


class AudioStore:
    """Enrolled audio as FLAC files plus a JSON sidecar per group, capped in total size.

    Layout: ``<dir>/<group>.flac`` holds the group's segments back to back, and
    ``<dir>/<group>.json`` records ``group``, ``domain``, ``ids``, ``origin``, ``created``,
    ``sample_rate`` and ``segments`` (sample counts). When the folder exceeds ``max_bytes``
    the oldest groups' audio is deleted (those references stay in the bank but cannot be
    rebuilt; a warning says so).

    Parameters
    ----------
    directory : path-like
        ``<state_dir>/audio`` (:attr:`edgeasd.paths.Paths.audio_dir`).
    max_bytes : int
        Cap on the folder's total size.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)

    def keep(self, batch: Any, ids: Sequence[int]) -> None:
        """Write one group's audio and sidecar, then enforce the size cap."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        flac = self.directory / f"{batch.group}.flac"
        write_audio(flac, np.concatenate(batch.segments), batch.sample_rate)
        record = {
            "group": batch.group,
            "domain": batch.domain,
            "ids": [int(i) for i in ids],
            "origin": batch.origin,
            "created": time.time(),
            "sample_rate": batch.sample_rate,
            "segments": [len(s) for s in batch.segments],
        }
        write_json_atomic(self.directory / f"{batch.group}.json", record, fsync=True)
        self.enforce_cap()

    def records(self) -> list[dict[str, Any]]:
        """Sidecars of the groups whose audio is kept, oldest first."""
        if not self.directory.is_dir():
            return []
        out = []
        for side in self.directory.glob("*.json"):
            try:
                record = json.loads(side.read_text())
            except (OSError, json.JSONDecodeError):
                log.warning("ignoring unreadable enrollment sidecar %s", side)
                continue
            if (self.directory / f"{record['group']}.flac").is_file():
                out.append(record)
        return sorted(out, key=lambda r: r["created"])

    def segments(self, record: dict[str, Any]) -> Iterator[np.ndarray]:
        """The kept audio of one group, segment by segment, at ``record['sample_rate']``."""
        audio = read_audio(self.directory / f"{record['group']}.flac")
        start = 0
        for length in record["segments"]:
            yield audio.samples[start : start + length]
            start += length

    def update_ids(self, group: str, ids: Sequence[int]) -> None:
        """Record new reference ids of a group (after a rebuild or a removal)."""
        side = self.directory / f"{group}.json"
        record = json.loads(side.read_text())
        if ids:
            record["ids"] = [int(i) for i in ids]
            write_json_atomic(side, record, fsync=True)
        else:
            self.drop(group)

    def forget(self, removed: Sequence[int]) -> None:
        """Drop removed reference ids from the sidecars (and a group's audio once empty)."""
        gone = {int(i) for i in removed}
        for record in self.records():
            left = [i for i in record["ids"] if i not in gone]
            if len(left) != len(record["ids"]):
                self.update_ids(record["group"], left)

    def drop(self, group: str) -> None:
        """Delete one group's audio and sidecar."""
        for suffix in (".flac", ".json"):
            (self.directory / f"{group}{suffix}").unlink(missing_ok=True)

    def size(self) -> int:
        """Total bytes of the kept audio and sidecars."""
        if not self.directory.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    def enforce_cap(self) -> None:
        """Delete the oldest groups until the folder fits ``max_bytes``."""
        records = self.records()
        while records and self.size() > self.max_bytes:
            oldest = records.pop(0)
            log.warning(
                "enrollment audio exceeds enrollment.audio_max_bytes=%d: deleting the audio of "
                "group %s (%d references that `bank rebuild` can no longer re-embed)",
                self.max_bytes,
                oldest["group"],
                len(oldest["ids"]),
            )
            self.drop(oldest["group"])


def keep_audio(
    audio_dir: Path, enrollment: Any, batches: Sequence[Any], ids: Sequence[int]
) -> None:
    """Keep the batches' audio if ``enrollment.keep_audio`` (never fails the enrollment).

    Parameters
    ----------
    audio_dir : pathlib.Path
        The kept audio's folder, :attr:`edgeasd.paths.Paths.audio_dir`.
    enrollment : edgeasd.config.EnrollmentConfig
        ``keep_audio`` and ``audio_max_bytes``.
    batches : sequence of edgeasd.enrollment.Batch
        The enrolled groups.
    ids : sequence of int
        The bank ids of the batches' embeddings, in order.
    """
    if not enrollment.keep_audio:
        return
    audio = AudioStore(audio_dir, enrollment.audio_max_bytes)
    start = 0
    for batch in batches:
        n = len(batch.embeddings)
        try:
            audio.keep(batch, ids[start : start + n])
        except (OSError, AudioFileError) as exc:
            log.warning("could not keep the enrolled audio of %s: %s", batch.group, exc)
        start += n
