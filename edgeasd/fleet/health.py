"""What the fleet observers are doing, for ``edgeasd status``: MQTT and the metrics target.

:func:`fleet_health` reads the live MQTT sink and metrics observer (duck-typed: the MQTT
sink has a disk ``queue``, the metrics observer a ``textfile``) without blocking: the
connection flag, the queue's message count and drop counter are in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def fleet_health(observers: Iterable[Any]) -> dict[str, Any]:
    """``{"mqtt": {...}, "metrics": {...}}`` for the observers that run (either may be absent).

    Returns
    -------
    dict
        ``mqtt``: ``broker`` (``host:port``), ``connected`` (bool), ``queued`` (messages
        waiting on disk), ``dropped`` (messages dropped by the full queue since start).
        ``metrics``: ``textfile`` (path) and ``http`` (``http://bind:port/metrics`` or None).
    """
    out: dict[str, Any] = {}
    for observer in observers:
        queue = getattr(observer, "queue", None)
        if queue is not None and hasattr(observer, "connected"):
            cfg = observer.settings
            port = cfg.port or (8883 if cfg.tls else 1883)
            out["mqtt"] = {
                "broker": f"{cfg.host}:{port}",
                "connected": bool(observer.connected),
                "queued": len(queue),
                "dropped": int(sum(getattr(queue, "dropped", {}).values())),
            }
        elif hasattr(observer, "textfile") and hasattr(observer, "registry"):
            cfg = observer.settings
            http = None
            if cfg.http_port is not None:
                http = f"http://{cfg.http_bind}:{cfg.http_port}/metrics"
            out["metrics"] = {"textfile": str(observer.textfile), "http": http}
    return out
