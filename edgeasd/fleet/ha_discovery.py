"""Home Assistant MQTT discovery: the entities of one agent, their ids, and their removal.

Every entity reads the agent's retained status topic (``<prefix>/<site>/<machine>/status``,
:meth:`edgeasd.fleet.mqtt.MqttSink.status_message`); none needs a topic of its own:

==================  ===============  =====================================================
object              platform         state
==================  ===============  =====================================================
``anomaly``         binary_sensor    ``problem``: on during an anomaly episode; every
                                     other status field as attributes
``no_signal``       binary_sensor    ``problem``: on while the microphone gives no usable
                                     signal (a dead input is not "Anomaly off")
``score``           sensor           the last window's score (``measurement``)
``threshold``       sensor           the decision threshold (``measurement``)
``state``           sensor           the agent's state in one word (diagnostic)
``last_alert``      sensor           the last alert's time (``timestamp``); its id, clip,
                                     score and nearest reference as attributes
==================  ===============  =====================================================

A number HA cannot have (no score yet, no threshold yet, no alert yet) never reaches a
template as ``None``: the entity's second availability topic (the status itself, with
``availability_mode: all``) marks it unavailable until the value exists. Every state
expires (``expire_after``) when three heartbeats are missed, so a status that stopped
coming is never shown as current.

Ids: :func:`node_id` maps (site, machine) injectively onto HA's ``[A-Za-z0-9_-]``
alphabet, so ``pump.4`` and ``pump_4`` are two devices, two client ids and two sets of
``unique_id``. :func:`all_config_topics` lists every config topic an agent may have
published, to clear (empty retained payload) those it no longer publishes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeasd.atomic import write_json_atomic

log = logging.getLogger(__name__)

#: (platform, object id) of every entity this version publishes.
ENTITIES = (
    ("binary_sensor", "anomaly"),
    ("binary_sensor", "no_signal"),
    ("sensor", "score"),
    ("sensor", "threshold"),
    ("sensor", "state"),
    ("sensor", "last_alert"),
)
#: Heartbeats missed before HA marks a state as expired: one late heartbeat (a slow
#: broker, a long enrollment commit) is normal, three in a row mean the agent is gone.
EXPIRE_HEARTBEATS = 3


def _escape(name: str) -> str:
    """``name`` in ``[A-Za-z0-9-]`` only, injectively: ``-`` is ``--``, any other byte
    outside ``[A-Za-z0-9]`` is ``-`` and two hex digits (of its UTF-8 encoding)."""
    out = []
    for byte in name.encode("utf-8"):
        c = chr(byte)
        if c.isascii() and c.isalnum():
            out.append(c)
        elif c == "-":
            out.append("--")
        else:
            out.append(f"-{byte:02x}")
    return "".join(out)


def node_id(site: str, machine: str) -> str:
    """The device's id: ``edgeasd_<site>_<machine>`` with both names escaped.

    Names of letters and digits stay as they are (``edgeasd_plant_pump1``); ``_`` appears
    only as the two separators, so two different (site, machine) pairs never share an id
    (``pump.4`` → ``pump-2e4``, ``pump_4`` → ``pump-5f4``, ``pump-4`` → ``pump--4``).
    """
    return f"edgeasd_{_escape(site)}_{_escape(machine)}"


def legacy_node_id(site: str, machine: str) -> str:
    """The id edgeasd 0.1.0 published under (not injective), to clear its configs."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"edgeasd_{site}_{machine}")


def expire_after(heartbeat_seconds: float) -> int:
    """Seconds after which HA treats a state as expired (:data:`EXPIRE_HEARTBEATS` heartbeats)."""
    return math.ceil(EXPIRE_HEARTBEATS * heartbeat_seconds)


def config_topic(prefix: str, platform: str, node: str, obj: str) -> str:
    """``<discovery_prefix>/<platform>/<node>/<object>/config``."""
    return f"{prefix}/{platform}/{node}/{obj}/config"


def all_config_topics(prefix: str, node: str) -> list[str]:
    """Every config topic of :data:`ENTITIES` under ``node``."""
    return [config_topic(prefix, p, node, o) for p, o in ENTITIES]


def _available_when(field: str) -> str:
    """An availability template: ``online`` once ``value_json.<field>`` exists."""
    return f"{{{{ 'online' if value_json.{field} is not none else 'offline' }}}}"


def configs(
    *,
    prefix: str,
    node: str,
    status_topic: str,
    availability_topic: str,
    heartbeat_seconds: float,
    device: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Config topic → config payload of every entity of :data:`ENTITIES`.

    Parameters
    ----------
    prefix : str
        ``mqtt.discovery_prefix``.
    node : str
        :func:`node_id` of the agent.
    status_topic, availability_topic : str
        The agent's retained status and availability topics.
    heartbeat_seconds : float
        ``mqtt.heartbeat_seconds`` (gives ``expire_after``).
    device : dict
        HA's device block (``identifiers``, ``name``, ``manufacturer``, ``model``...).
    """
    agent_online = {
        "topic": availability_topic,
        "payload_available": "online",
        "payload_not_available": "offline",
    }

    def entity(platform: str, obj: str, name: str, needs: str | None = None, **keys: Any):
        availability = [agent_online]
        if needs is not None:
            availability.append({"topic": status_topic, "value_template": _available_when(needs)})
        payload = {
            "name": name,
            "unique_id": f"{node}_{obj}",
            "object_id": f"{node}_{obj}",
            "state_topic": status_topic,
            "availability": availability,
            "availability_mode": "all",
            "expire_after": expire_after(heartbeat_seconds),
            "device": device,
            **keys,
        }
        return config_topic(prefix, platform, node, obj), payload

    items = [
        entity(
            "binary_sensor",
            "anomaly",
            "Anomaly",
            device_class="problem",
            value_template="{{ 'ON' if value_json.anomaly else 'OFF' }}",
            json_attributes_topic=status_topic,
        ),
        entity(
            "binary_sensor",
            "no_signal",
            "No signal",
            device_class="problem",
            value_template="{{ 'ON' if value_json.no_signal else 'OFF' }}",
        ),
        entity(
            "sensor",
            "score",
            "Anomaly score",
            needs="last_score",
            state_class="measurement",
            suggested_display_precision=3,
            value_template="{{ value_json.last_score }}",
        ),
        entity(
            "sensor",
            "threshold",
            "Threshold",
            needs="threshold",
            state_class="measurement",
            suggested_display_precision=3,
            value_template="{{ value_json.threshold }}",
        ),
        entity(
            "sensor",
            "state",
            "Agent state",
            entity_category="diagnostic",
            value_template="{{ value_json.state }}",
        ),
        entity(
            "sensor",
            "last_alert",
            "Last alert",
            needs="last_alert",
            device_class="timestamp",
            value_template="{{ value_json.last_alert.time }}",
            json_attributes_topic=status_topic,
            json_attributes_template="{{ value_json.last_alert | tojson }}",
        ),
    ]
    return dict(items)


def legacy_config_topics(prefix: str, site: str, machine: str) -> set[str]:
    """The two config topics edgeasd 0.1.0 published, when its id differs from today's."""
    legacy = legacy_node_id(site, machine)
    if legacy == node_id(site, machine):
        return set()
    return {
        config_topic(prefix, "binary_sensor", legacy, "anomaly"),
        config_topic(prefix, "sensor", legacy, "score"),
    }


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def publish_retained(
    publish: Callable[[str, str | bytes], Any],
    record_path: str | os.PathLike[str],
    *,
    base: str,
    configs: dict[str, dict[str, Any]],
    legacy: set[str],
) -> None:
    """Publish the discovery ``configs`` and remove what an earlier run left behind.

    Parameters
    ----------
    publish : callable
        ``publish(topic, payload)``, retained (an empty payload deletes a retained message,
        and HA removes the entity of an empty config).
    record_path : path-like
        What was published last time (``{"base": ..., "configs": [...]}``), rewritten here.
    base : str
        ``<topic_prefix>/<site>/<machine>``: when it changed, the old device's retained
        ``status`` and ``availability`` are removed too.
    configs : dict
        Config topic → payload to publish now (empty: ``homeassistant: false``).
    legacy : set of str
        Further config topics to remove (:func:`legacy_config_topics`).
    """
    path = Path(record_path)
    before = _read_record(path)
    old = {t for t in before.get("configs") or () if isinstance(t, str)} | legacy
    for topic in sorted(old - set(configs)):
        publish(topic, b"")
    old_base = before.get("base")
    if isinstance(old_base, str) and old_base != base:
        for leaf in ("status", "availability"):
            publish(f"{old_base}/{leaf}", b"")
    for topic, config in configs.items():
        publish(topic, json.dumps(config))
    try:
        write_json_atomic(path, {"base": base, "configs": sorted(configs)})
    except OSError as exc:
        log.warning("cannot record the discovery topics in %s: %s", path, exc)
