"""The daemon's bank commands beside enrollment: feedback, ``bank remove``, ``bank restore``.

:class:`BankCommands` is mixed into :class:`~edgeasd.agent.control.commands.CommandHandling`
(and so into the daemon). ``edgeasd feedback`` embeds an alert's kept episode in the
connection's thread (like a file enrollment) and hands a ``commit`` to the run loop;
``bank remove`` and ``bank restore`` are applied by the run loop itself, which owns the bank,
between two windows: the threshold follows at the next one, and each change is an event.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgeasd.agent.alerts.bank_events import bank_event
from edgeasd.agent.control.handoff import Command
from edgeasd.agent.enrollment import bank_edits, bank_lifecycle, feedback
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.errors import ControlError, EdgeasdError
from edgeasd.scoring import store

log = logging.getLogger("edgeasd.agent.runloop.daemon")  # one logger for the daemon's messages


class BankCommands:
    """Feedback and live bank edits of the daemon (a mixin; see
    :class:`~edgeasd.agent.control.commands.CommandHandling` for the attributes it uses)."""

    def _reopen_bank(self) -> None:
        """Load the bank file again (after a failed change: memory follows the disk)."""
        self.bank = bank_lifecycle.open_bank(self.bank_path, self.config.scoring, self.info)
        self._bank_fp = bank_fingerprint(self.bank_path)

    def _feedback_command(self, request: dict[str, Any]) -> Command:
        """Embed an alert's kept episode into a ``commit`` command (``edgeasd feedback``)."""
        feedback.check_label(request["label"])
        episode = feedback.load_episode(self.dirs, request["alert"])
        batches = feedback.feedback_batches(
            episode, self.embedder, self.window_seconds, self.config.enrollment.group_seconds
        )
        payload = {
            "batches": batches,
            "accept_anomalous": True,  # the operator confirmed these windows
            "event": "feedback",
            "extra": feedback.describe(episode),
            "exclusive": True,
        }
        return Command("commit", payload)

    def _bank_edit(self, cmd: Command) -> None:
        """``bank remove`` / ``bank restore`` in the run loop: the bank changes under no window.

        On success the detector's threshold follows the changed bank and a ``removed`` or
        ``restored`` event is emitted; on an unexpected failure the bank is reloaded from disk.
        """
        audio = AudioStore(self.dirs.audio_dir, self.config.enrollment.audio_max_bytes)
        try:
            if cmd.kind == "bank_remove":
                with store.locked(self.bank_path):
                    if bank_fingerprint(self.bank_path) != self._bank_fp:
                        self.bank = bank_lifecycle.open_bank(
                            self.bank_path, self.config.scoring, self.info
                        )
                    result = bank_edits.remove_references(
                        self.bank, self.bank_path, cmd.payload["ids"], audio
                    )
                kind = "removed"
            else:
                result = bank_edits.restore_generation(self.bank_path, cmd.payload["generation"])
                self.bank = bank_lifecycle.open_bank(self.bank_path, self.config.scoring, self.info)
                kind = "restored"
        except Exception as exc:
            try:  # whatever happened on disk, the bank in memory is the file's
                self._reopen_bank()
                self._refresh_detector()
            except BaseException:
                cmd.finish(
                    error=ControlError(
                        f"{cmd.kind} failed ({exc}), and the bank could not be reloaded: the "
                        "daemon stops",
                        help="`edgeasd bank restore` lists the backups; start it again",
                    )
                )
                raise
            if not isinstance(exc, EdgeasdError):
                log.error("%s failed unexpectedly", cmd.kind, exc_info=exc)
                exc = ControlError(
                    f"{cmd.kind} failed with an internal error ({type(exc).__name__}: {exc}); "
                    "the daemon reloaded the bank from disk",
                    help="the traceback is in the daemon's log (`journalctl -u edgeasd`); "
                    "please report it",
                )
            cmd.finish(error=exc)
            return
        self._bank_fp = bank_fingerprint(self.bank_path)
        self._refresh_detector()
        result.update(
            bank_size=len(self.bank),
            domains=bank_lifecycle.bank_summary(self.bank),
            **self._state.as_dict(),
        )
        self._emit_event(bank_event(kind, result, "daemon", now=self.stamps.now()))
        if self._learning():
            self.status.update(state="learning")
        else:
            self.status.update(state="running")
        cmd.finish(result)


def bank_fingerprint(path: Path) -> bytes | None:
    """The bank file's checksum (None: no file), to notice writes by other processes."""
    return store.fingerprint(path) if path.exists() else None
