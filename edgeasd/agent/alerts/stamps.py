"""The wall-clock stamps of events: what people read, never going back within a run.

Events are stamped with the wall clock (a window's ``start_time``, or ``time.time()`` for a
device stall, its resumption, an enrollment). When the system clock steps back by D, a
later event would carry an earlier stamp than the line before it, and ``alerts.jsonl``
would read out of order (issue 20). :class:`Stamps` holds every stamp at or after the
previous one: after a backward step the stamps stay at the last one until the wall clock
catches up (at most D); forward steps are followed at once. Durations are not measured on
these stamps (see :mod:`edgeasd.agent.alerts.detector`): they stay right either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("edgeasd.agent.runloop.daemon")

#: A backward step larger than this is logged once per step (smaller ones are the
#: sub-second jitter between the capture clock and ``time.time()``).
STEP_LOGGED_SECONDS = 1.0


class Stamps:
    """Non-decreasing wall-clock stamps.

    Parameters
    ----------
    wall : callable
        The wall clock (``time.time``; a parameter for tests).
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.last = -float("inf")
        self.held = 0  # stamps raised to the previous one so far

    def stamp(self, when: float) -> float:
        """``when`` (UNIX seconds), or the previous stamp if ``when`` is earlier."""
        if when < self.last:
            if self.last - when > STEP_LOGGED_SECONDS and self.held == 0:
                log.warning(
                    "the system clock went back by %.1f s: event times are held at %.3f "
                    "until it catches up (durations are not affected)",
                    self.last - when,
                    self.last,
                )
            self.held += 1
            return self.last
        self.held = 0
        self.last = when
        return when

    def now(self) -> float:
        """The wall clock now, as a stamp."""
        return self.stamp(self._wall())
