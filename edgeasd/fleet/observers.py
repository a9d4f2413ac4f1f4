"""Builds the fleet observers of the event sinks: the MQTT sink and the Prometheus metrics.

:func:`observers` is called by :meth:`edgeasd.agent.alerts.sinks.EventSinks.from_config` at
start and on every reload. An observer whose configuration section did not change is carried
over from the previous sinks (the broker connection stays up, counters keep counting); the
others are built anew. A failure at start is raised (the daemon does not start with a
configuration it cannot honour); on a reload it is logged and the daemon goes on without that
observer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeasd.errors import EdgeasdError

if TYPE_CHECKING:
    from edgeasd.config import Config
    from edgeasd.config.paths import Paths
    from edgeasd.fleet.metrics import Metrics
    from edgeasd.fleet.mqtt import MqttSink
    from edgeasd.interfaces import Sink

log = logging.getLogger(__name__)


def queue_path(paths: Paths) -> Path:
    """The MQTT store-and-forward database: ``<state_dir>/mqtt-queue.sqlite``."""
    return Path(paths.state_dir) / "mqtt-queue.sqlite"


def textfile_path(config: Config, paths: Paths) -> Path:
    """``metrics.textfile``, else ``<runtime_dir>/edgeasd.prom``."""
    return Path(config.metrics.textfile or Path(paths.runtime_dir) / "edgeasd.prom")


def _take(previous: list[Any], cls_name: str, settings: Any) -> Any | None:
    """Remove and return the previous observer of this class if its settings are unchanged."""
    for obs in previous:
        if type(obs).__name__ == cls_name and obs.settings == settings:
            previous.remove(obs)
            return obs
    return None


def observers(
    config: Config,
    paths: Paths,
    status: Callable[[], dict[str, Any]] | None = None,
    previous: list[Any] | None = None,
) -> list[Sink]:
    """The MQTT sink and the metrics for ``config`` (each only if enabled).

    Parameters
    ----------
    config : edgeasd.config.Config
    paths : edgeasd.config.paths.Paths
    status : callable, optional
        The daemon's ``StatusBoard.snapshot``.
    previous : list, optional
        The observers of the sinks being replaced (a reload). Those reused are removed
        from it; the caller closes the rest.

    Raises
    ------
    EdgeasdError
        At start (``previous`` is None) when an observer cannot be built.
    """
    reloading = previous is not None
    previous = previous if previous is not None else []
    built: list[Sink] = []
    mqtt_sink = None
    if config.mqtt.enabled:
        mqtt_sink = _take(previous, "MqttSink", config.mqtt)
        if mqtt_sink is None:
            carry = _close_old_mqtt(previous, config)
            mqtt_sink = _build(reloading, "MQTT", _make_mqtt, config, paths, status, carry)
    else:
        _close_old_mqtt(previous, config)
    if mqtt_sink is not None:
        built.append(mqtt_sink)
    if config.metrics.enabled:
        metrics = _take(previous, "Metrics", config.metrics)
        if metrics is not None and metrics.textfile != textfile_path(config, paths):
            previous.append(metrics)
            metrics = None
        if metrics is not None and metrics.mqtt is not mqtt_sink:
            previous.append(metrics)  # it reads the old sink's queue: rebuild it
            metrics = None
        if metrics is None:
            metrics = _build(reloading, "metrics", _make_metrics, config, paths, status, mqtt_sink)
        if metrics is not None:
            built.append(metrics)
    return built


def _close_old_mqtt(previous: list[Any], config: Config) -> dict[str, Any] | None:
    """Close a replaced MQTT sink *before* its successor connects.

    Two clients with one client id would knock each other off, and the broker would
    publish the old one's ``offline`` last will after the new one said ``online``; the old
    one's clean ``DISCONNECT`` discards its will. When the new sink keeps the same topics it
    is a hand-over (no ``offline``, the retained status stays); otherwise the old device
    says ``stopped`` and ``offline`` on its own topics. Its queue file is the new sink's:
    what it did not send goes out from there.

    Returns
    -------
    dict or None
        The old sink's episode state (:meth:`MqttSink.carried`) for its successor.
    """
    carry = None
    for obs in [o for o in previous if type(o).__name__ == "MqttSink"]:
        same = (
            config.mqtt.enabled
            and obs.settings.topic_prefix == config.mqtt.topic_prefix
            and obs.settings.site == config.mqtt.site
            and obs.settings.machine == config.mqtt.machine
        )
        carry = obs.carried()
        try:
            obs.close(handover=same)
        except Exception:  # a failing goodbye must not cost the reload
            log.exception("closing the previous MQTT sink failed")
    return carry


def _build(reloading: bool, what: str, make: Callable[..., Any], *args: Any) -> Any | None:
    try:
        return make(*args)
    except EdgeasdError as exc:
        if not reloading:
            raise
        log.error("reload: %s disabled: %s", what, exc.format())
        return None


def _make_mqtt(
    config: Config,
    paths: Paths,
    status: Callable[[], dict[str, Any]] | None,
    carry: dict[str, Any] | None = None,
) -> MqttSink:
    from edgeasd.fleet.mqtt import MqttSink  # paho is an optional extra: import it only when used

    return MqttSink(config.mqtt, queue_path(paths), status, carry=carry)


def _make_metrics(
    config: Config,
    paths: Paths,
    status: Callable[[], dict[str, Any]] | None,
    mqtt_sink: MqttSink | None,
) -> Metrics:
    from edgeasd.fleet.metrics import Metrics

    return Metrics(config.metrics, textfile_path(config, paths), status, mqtt_sink)
