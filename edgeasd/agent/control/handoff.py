"""The hand-off of a control request to the thread that owns the bank: :class:`Command`.

A control connection's thread queues a :class:`Command` and blocks until the run loop
(:mod:`edgeasd.agent.runloop.daemon`, through :mod:`edgeasd.agent.control.commands`) has
finished it; :func:`drain` takes the queued commands without blocking.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Command:
    """A request handed from a control thread to the thread that owns the bank.

    The control thread puts it on a queue and blocks in :meth:`wait`; the owner calls
    :meth:`finish` with the result or the error.

    Attributes
    ----------
    kind : str
        ``"enroll_next"``, ``"commit"`` (files or feedback), ``"reload"``, ``"bank_remove"``
        or ``"bank_restore"``.
    payload : dict
        The request's parameters (``n``, ``domain``, ``accept_anomalous``; ``batches``, and
        for feedback ``event``, ``extra``, ``exclusive``; ``ids``; ``generation``); an
        ``enroll_next``'s
        group builder under ``_builder`` (its windows' embeddings and staged audio).
    abandoned : bool
        The client hung up before the command started or finished: the owner drops it
        (nothing of it is enrolled unless its commit had already begun).
    """

    kind: str
    payload: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    abandoned: bool = False

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None):
        """Complete the command (wakes :meth:`wait`)."""
        self.result, self.error = result, error
        self.done.set()

    def wait(self) -> dict[str, Any]:
        """Block until finished; return the result or raise the error."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def drain(commands: queue.Queue[Command]) -> list[Command]:
    """Take every command queued so far, without blocking."""
    out = []
    while True:
        try:
            out.append(commands.get_nowait())
        except queue.Empty:
            return out
