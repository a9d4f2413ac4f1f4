"""Enrolled audio kept compressed (FLAC) and size-capped, so ``bank rebuild`` can re-embed it.

``<state_dir>/audio/<group>.flac`` holds a group's audio segments back to back and
``<group>.json`` its sidecar (domain, reference ids, origin, segment lengths, pending). When
the folder exceeds ``enrollment.audio_max_bytes`` the oldest groups' audio is deleted.
Keeping audio never fails an enrollment: the references are persisted first (see
:func:`edgeasd.agent.enrollment.enroll.commit` for the write order) and a failure is a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.agent.enrollment.grouping import STAGED_SUFFIX
from edgeasd.atomic import write_json_atomic
from edgeasd.audio.io import read_audio, write_audio
from edgeasd.errors import AudioFileError, EdgeasdError
from edgeasd.filemode import AUDIO_MODE, DIR_MODE, narrow_path

if TYPE_CHECKING:
    from edgeasd.agent.enrollment.batch import Batch

log = logging.getLogger(__name__)


#: Sidecar keys every kept group must have.
REQUIRED_KEYS = ("group", "domain", "created", "sample_rate", "segments")


class AudioStore:
    """Enrolled audio as FLAC files plus a JSON sidecar per group, capped in total size.

    Layout: ``<dir>/<group>.flac`` holds the group's segments back to back, and
    ``<dir>/<group>.json`` records ``group``, ``domain``, ``ids``, ``origin``, ``created``,
    ``sample_rate``, ``segments`` (sample counts) and ``pending`` (true from the moment the
    audio is in place until the bank holding its references is saved, see
    :func:`edgeasd.agent.enrollment.enroll.commit`). Streamed enrollments stage their audio as
    ``<dir>/.<group>.flac.part`` first. When the folder exceeds ``max_bytes`` the oldest
    groups' audio is deleted (those references stay in the bank, and ``bank rebuild``
    carries them with their stored embeddings; a warning says so).

    Failures to keep audio never fail an enrollment: they are logged and collected in
    :attr:`warnings`.

    Parameters
    ----------
    directory : path-like
        ``<state_dir>/audio`` (:attr:`edgeasd.config.paths.Paths.audio_dir`).
    max_bytes : int
        Cap on the folder's total size.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        #: Problems met while keeping audio (the enrollment succeeded regardless).
        self.warnings: list[str] = []
        #: Sidecars or audio files that could not be used: ``(file name, why)``.
        self.problems: list[tuple[str, str]] = []

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        self.warnings.append(text)

    def stage(self, batches: Sequence[Batch]) -> None:
        """Put each batch's audio in place with a pending sidecar (before the bank save)."""
        for batch in batches:
            try:
                self._place(batch)
            except Exception as exc:  # full disk, permissions, soundfile asserts
                self.drop(batch.group)
                self._warn(
                    f"could not keep the enrolled audio of group {batch.group} ({exc}); its "
                    "references are enrolled, and `bank rebuild` keeps them with their stored "
                    "embeddings"
                )
            finally:
                if batch.staged is not None:
                    Path(batch.staged).unlink(missing_ok=True)

    def _place(self, batch: Batch) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        flac = self.directory / f"{batch.group}.flac"
        if batch.staged is not None:
            os.replace(batch.staged, flac)
            segments = [int(n) for n in batch.segment_lengths]
        elif batch.segments:
            write_audio(flac, np.concatenate(batch.segments), batch.sample_rate)
            segments = [len(s) for s in batch.segments]
        else:
            raise AudioFileError("no audio was staged for it")
        record = {
            "group": batch.group,
            "domain": batch.domain,
            "ids": [],
            "origin": batch.origin,
            "created": time.time(),
            "sample_rate": batch.sample_rate,
            "segments": segments,
            "pending": True,
        }
        write_json_atomic(self.directory / f"{batch.group}.json", record, fsync=True)

    def confirm(self, batches: Sequence[Batch], ids: Sequence[int]) -> None:
        """Record the reference ids of saved batches in their sidecars, then enforce the cap."""
        start = 0
        for batch in batches:
            n = len(batch.embeddings)
            side = self.directory / f"{batch.group}.json"
            try:
                if side.is_file():
                    record = json.loads(side.read_text())
                    record.update(ids=[int(i) for i in ids[start : start + n]], pending=False)
                    write_json_atomic(side, record, fsync=True)
            except Exception as exc:
                self._warn(
                    f"could not record the ids of group {batch.group} in {side} ({exc}); "
                    "`bank rebuild` still matches it by group"
                )
            start += n
        try:
            self.enforce_cap()
        except OSError as exc:
            self._warn(f"could not enforce enrollment.audio_max_bytes: {exc}")

    def keep(self, batch: Batch, ids: Sequence[int]) -> None:
        """Keep one already saved group's audio and sidecar, then enforce the size cap."""
        self.stage([batch])
        self.confirm([batch], ids)

    def read_record(self, side: Path) -> dict[str, Any]:
        """Parse and check one sidecar.

        Raises
        ------
        AudioFileError
            Unreadable JSON, a missing key, or a group name that is not a safe tag.
        """
        from edgeasd.agent.enrollment.batch import validate_tag

        try:
            record = json.loads(side.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AudioFileError(f"enrollment sidecar {side} is unreadable: {exc}") from None
        if not isinstance(record, dict):
            raise AudioFileError(f"enrollment sidecar {side} is not a JSON object")
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise AudioFileError(
                f"enrollment sidecar {side} lacks {', '.join(missing)}",
                help="`edgeasd bank rebuild` keeps its references with their stored embeddings",
            )
        try:
            validate_tag("group", record["group"])
            if record["group"] != side.stem:
                raise ValueError(f"names group {record['group']!r}")
            record["segments"] = [int(n) for n in record["segments"]]
            record["sample_rate"] = int(record["sample_rate"])
            record["created"] = float(record["created"])
            record["ids"] = [int(i) for i in record.get("ids") or []]
        except (EdgeasdError, TypeError, ValueError) as exc:
            raise AudioFileError(f"enrollment sidecar {side} is malformed: {exc}") from None
        return record

    def records(self, pending: bool = True) -> list[dict[str, Any]]:
        """Sidecars of the groups whose audio is kept, oldest first.

        A sidecar that cannot be used is skipped and named in :attr:`problems` (and the
        log), never fatal.

        Parameters
        ----------
        pending : bool
            Include groups whose bank save was not confirmed (see :meth:`stage`).
        """
        if not self.directory.is_dir():
            return []
        out = []
        self.problems = []
        for side in sorted(self.directory.glob("*.json")):
            try:
                record = self.read_record(side)
            except AudioFileError as exc:
                log.warning("skipping enrollment sidecar: %s", exc)
                self.problems.append((side.name, str(exc)))
                continue
            if not (self.directory / f"{record['group']}.flac").is_file():
                continue
            if pending or not record.get("pending"):
                out.append(record)
        return sorted(out, key=lambda r: r["created"])

    def segments(self, record: dict[str, Any]) -> Iterator[np.ndarray]:
        """The kept audio of one group, segment by segment, at ``record['sample_rate']``.

        Raises
        ------
        AudioFileError
            The FLAC is unreadable, truncated, or shorter than the sidecar's segments.
        """
        flac = self.directory / f"{record['group']}.flac"
        audio = read_audio(flac)
        if audio.sample_rate != record["sample_rate"]:
            raise AudioFileError(
                f"{flac} is at {audio.sample_rate} Hz, its sidecar says {record['sample_rate']}"
            )
        if sum(record["segments"]) > audio.samples.size:
            raise AudioFileError(
                f"{flac} holds {audio.samples.size} samples, its sidecar announces "
                f"{sum(record['segments'])} (truncated)"
            )
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
            record["pending"] = False
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
            with contextlib.suppress(OSError):
                (self.directory / f"{group}{suffix}").unlink()

    def size(self) -> int:
        """Total bytes of the committed files: kept audio, sidecars and anything else.

        Temporaries (hidden files: staged ``.part`` audio of requests in flight or killed, the
        atomic writer's ``.tmp`` files) are not counted, so that they never evict committed
        audio; :meth:`clean_at_start` removes those of killed requests.
        """
        if not self.directory.is_dir():
            return 0
        total = 0
        for p in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if not p.name.startswith(".") and p.is_file():
                    total += p.stat().st_size
        return total

    def enforce_cap(self) -> None:
        """Delete the oldest groups until the folder fits ``max_bytes``."""
        records = self.records()
        while records and self.size() > self.max_bytes:
            oldest = records.pop(0)
            log.warning(
                "enrollment audio exceeds enrollment.audio_max_bytes=%d: deleting the audio of "
                "group %s (%d references that `bank rebuild` keeps with their stored "
                "embeddings but can no longer re-embed)",
                self.max_bytes,
                oldest["group"],
                len(oldest["ids"]),
            )
            self.drop(oldest["group"])

    def reconcile(self, bank: Any) -> None:
        """Settle pending sidecars left by killed commits (the caller holds the bank).

        A pending group the bank holds was saved but not confirmed: it gets its ids. One the
        bank does not hold was never saved nor acknowledged: its audio goes, so that it never
        takes committed groups' room under the cap.

        Parameters
        ----------
        bank : ReferenceBank
            The bank as saved (``groups_`` and ``ids_`` are read).
        """
        bank_ids: dict[str, list[int]] = {}
        for group, i in zip(bank.groups_.tolist(), bank.ids_.tolist(), strict=True):
            bank_ids.setdefault(str(group), []).append(int(i))
        for record in self.records():
            if not record.get("pending"):
                continue
            group = record["group"]
            try:
                if group in bank_ids:
                    self.update_ids(group, bank_ids[group])
                else:
                    log.info("dropping the audio of group %s: it was never saved", group)
                    self.drop(group)
            except (OSError, ValueError) as exc:
                self._warn(f"could not settle the kept audio of group {group}: {exc}")

    def clean_at_start(self, bank: Any) -> list[str]:
        """At the daemon's start: no request survives a restart, so nothing staged is live.

        Removes every staged ``.part`` file and the atomic writer's temporaries, and FLACs
        without a sidecar (a kill between putting the audio in place and writing its
        sidecar): they would count against the cap forever. Kept FLACs an older version left
        wider are narrowed to ``0600``. Then settles pending groups
        against ``bank`` (:meth:`reconcile`) and fits the cap, which may have shrunk.

        Returns
        -------
        list of str
            The removed file names.
        """
        gone = self.clean_staged(older_than=0.0)
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                temporary = path.name.startswith(".") and path.name.endswith(".tmp")
                orphan = path.suffix == ".flac" and not path.with_suffix(".json").exists()
                if temporary or orphan:
                    with contextlib.suppress(OSError):
                        path.unlink()
                        gone.append(path.name)
                elif path.suffix == ".flac":  # kept 0644 by versions before 0600 held
                    narrow_path(path, AUDIO_MODE)
        if gone:
            log.info("removed %d file(s) of interrupted enrollments: %s", len(gone), gone)
        self.reconcile(bank)
        try:
            self.enforce_cap()
        except OSError as exc:
            self._warn(f"could not enforce enrollment.audio_max_bytes: {exc}")
        return gone

    def clean_staged(self, older_than: float = 3600.0) -> list[str]:
        """Delete staged audio left by killed enrollments (older than ``older_than`` s).

        Commands that may run beside another enrollment (a direct ``enroll``, ``bank rebuild``)
        keep the default hour; the daemon's start removes all (:meth:`clean_at_start`).
        """
        gone = []
        if self.directory.is_dir():
            now = time.time()
            for part in self.directory.glob(f".*{STAGED_SUFFIX}"):
                with contextlib.suppress(OSError):
                    if now - part.stat().st_mtime >= older_than:
                        part.unlink()
                        gone.append(part.name)
        return gone
