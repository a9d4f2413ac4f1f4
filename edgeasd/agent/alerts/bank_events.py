"""Events of bank changes: ``enrolled``, ``feedback``, ``removed``, ``restored``.

Every change of the reference bank is an event, so that ``alerts.jsonl``, MQTT and the
report show what moved the threshold: the running daemon emits it through its sinks; a
command run while the daemon is stopped (``enroll FILE`` directly, ``bank remove``,
``bank restore``, ``feedback``) writes it to ``alerts.jsonl`` itself and queues it for MQTT
(:func:`emit_direct`; the daemon publishes the queue once it runs).

Each event has ``via`` (``daemon`` or ``direct``) and the bank after the change:
``bank_size``, ``domains`` (references per condition), ``threshold``, ``state``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from edgeasd.agent.alerts.detector import make_event

if TYPE_CHECKING:
    from edgeasd.config import Config
    from edgeasd.config.paths import Paths

log = logging.getLogger(__name__)

#: The kinds of bank-change events.
KINDS = ("enrolled", "feedback", "removed", "restored")


def bank_event(
    kind: str, result: dict[str, Any], via: str, now: float | None = None
) -> dict[str, Any]:
    """The event of one bank change, from the change's result.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    result : dict
        What the change returned (an enrollment result, a removal or restore result).
    via : str
        ``"daemon"`` or ``"direct"``.
    now : float, optional
        The event's stamp (the daemon's, which never goes back); default ``time.time()``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown bank event {kind!r}")
    fields = {k: v for k, v in result.items() if k not in ("guard_words", "commissioning")}
    return make_event(kind, time.time() if now is None else now, via=via, **fields)


def emit_direct(config: Config, paths: Paths, event: dict[str, Any]) -> None:
    """Write a bank-change event without the daemon: ``alerts.jsonl`` and the MQTT queue.

    A failure to log is a warning: the bank change it reports is already saved.
    """
    from edgeasd.agent.alerts.event_log import JsonlLog
    from edgeasd.fleet.mqtt import queue_event
    from edgeasd.fleet.observers import queue_path

    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        alerts = JsonlLog(paths.alerts_log, config.logs.max_bytes, config.logs.backups)
        try:
            alerts.write(event)
        finally:
            alerts.close()
        queue_event(config.mqtt, queue_path(paths), event)
    except Exception as exc:
        log.warning("could not log the %s event: %s", event.get("event"), exc)
