"""The daemon's verdict side: the bank's state, threshold and detector kept current; events out.

:class:`VerdictHandling` is mixed into :class:`~edgeasd.agent.runloop.daemon.Daemon` (like the
command and reload sides) and works on its state: after a load, an enrollment, a bank edit or
a reload, :meth:`~VerdictHandling._refresh_detector` recomputes the bank state under the
configured threshold rule and updates the detector in place; :meth:`~VerdictHandling._emit_event`
sends every event to the sinks, the status and the kept episodes.
"""

from __future__ import annotations

import logging
from typing import Any

from edgeasd.agent.alerts import commissioning, decision
from edgeasd.agent.alerts.detector import Detector
from edgeasd.agent.enrollment import bank_lifecycle

log = logging.getLogger("edgeasd.agent.runloop.daemon")  # the daemon's log, as before the split


class VerdictHandling:
    """Bank state, threshold, detector and events of the run loop (mixed into ``Daemon``)."""

    def _bank_changed(self) -> None:
        """Cache what the per-window path reads from the bank (after a load or enrollment).

        ``bank.domains_`` builds an array of all N references: read it here once, not per
        window (the group count is in ``self._state``, see :meth:`_refresh_detector`).
        """
        self._domain_of = bank_lifecycle.domain_by_id(self.bank)

    def _refresh_detector(self) -> None:
        """Update the bank state and the threshold in place (after an enrollment or reload).

        The detector is built once, at the first finite threshold, and then only updated
        (:meth:`Detector.set_threshold`, :meth:`Detector.set_debounce`): a continuing episode
        keeps its single alert across enrollments and reloads. Without a finite threshold
        the windows are ``uncalibrated`` and the detector is not fed.
        """
        self._bank_changed()
        st = decision.bank_state(self.bank, self.config, self.hop_seconds)
        for warning in st.warnings:
            if warning not in self._warned:  # each once: not at every enrollment
                log.warning("%s", warning)
        self._warned = set(st.warnings)
        self._state = st
        det = self.config.detector
        if st.calibrated and self.detector is None:
            self.detector = Detector(
                st.threshold,
                k=det.k,
                n=det.n,
                threshold_source=st.threshold_source,
                reminder_seconds=det.reminder_seconds,
                threshold_facts=st.threshold_facts(),
            )
        elif st.calibrated:
            self.detector.set_threshold(st.threshold, st.threshold_source, st.threshold_facts())
        if self.detector is not None:
            self.detector.set_debounce(det.k, det.n, det.reminder_seconds)
        self.episodes.restore_detector(self.detector)  # once a detector exists
        self.status.update(
            **self.episodes.status_fields(self.detector, self.signal_watch),
            threshold=st.threshold if st.calibrated else None,
            threshold_source=st.threshold_source,
            decision_state=st.state,
            warnings=list(st.warnings),
            bank=bank_lifecycle.bank_summary(self.bank),
            bank_size=len(self.bank),
            learning_needed=st.learning_needed,
            learning=st.learning,
        )
        self.status.update(threshold_report=st.threshold_report())
        self.status.update(commissioning=commissioning.conditions(self.bank, self.hop_seconds))

    def _learning(self) -> str | None:
        """Why the agent cannot score yet (None: it can); see :func:`decision.learning_reason`."""
        return self._state.learning

    def _emit_event(self, event: dict[str, Any]) -> None:
        self.sinks.emit(event)
        self.status.event(event)
        if self.episodes.note(event, self.detector, self.signal_watch):
            fields = self.episodes.status_fields(self.detector, self.signal_watch)
            self.status.update(write=False, **fields)
        if self.on_record:
            self.on_record(event)
