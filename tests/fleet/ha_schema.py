"""Home Assistant's MQTT discovery schema for the two platforms edgeasd uses, written out.

The ``homeassistant`` package holds these schemas, but no release that installs on Python
3.11 is practical in CI: the last one (2024.3.3) is a 35 MB wheel with 33 exact pins
(``aiohttp==3.9.3``, ``urllib3<2``, ``cryptography==42.0.5``...) that clash with this
project's environment. So the constraints are encoded here, key by key, from HA's
documentation and its source of 2024.3 (``components/mqtt/{mixins,sensor,binary_sensor}.py``:
``MQTT_RO_SCHEMA``, ``MQTT_AVAILABILITY_SCHEMA``, ``MQTT_ENTITY_COMMON_SCHEMA``,
``MQTT_ENTITY_DEVICE_INFO_SCHEMA``; ``components/{sensor,binary_sensor}`` device classes),
plus the rules HA applies to a state when it arrives (a ``measurement`` sensor must be
numeric, a ``timestamp`` sensor an ISO time with its offset; ``ON``/``OFF`` for a binary
sensor), checked by :func:`simulate` on rendered templates.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2

BINARY_DEVICE_CLASSES = frozenset(
    "battery battery_charging carbon_monoxide cold connectivity door garage_door gas heat "
    "light lock moisture motion moving occupancy opening plug power presence problem running "
    "safety smoke sound tamper update vibration window".split()
)
SENSOR_DEVICE_CLASSES = frozenset(
    "date enum timestamp apparent_power aqi atmospheric_pressure battery carbon_monoxide "
    "carbon_dioxide current data_rate data_size distance duration energy energy_storage "
    "frequency gas humidity illuminance irradiance moisture monetary nitrogen_dioxide "
    "nitrogen_monoxide nitrous_oxide ozone ph pm1 pm10 pm25 power_factor power precipitation "
    "precipitation_intensity pressure reactive_power signal_strength sound_pressure speed "
    "sulphur_dioxide temperature volatile_organic_compounds volatile_organic_compounds_parts "
    "voltage volume volume_storage volume_flow_rate water weight wind_speed".split()
)
STATE_CLASSES = frozenset({"measurement", "total", "total_increasing"})

_STR, _BOOL, _INT = (str,), (bool,), (int,)
#: Keys every MQTT entity accepts (availability, device, attributes, ids), with their types.
COMMON = {
    "name": _STR,
    "unique_id": _STR,
    "object_id": _STR,
    "state_topic": _STR,
    "value_template": _STR,
    "qos": _INT,
    "encoding": _STR,
    "availability_topic": _STR,
    "availability_template": _STR,
    "payload_available": _STR,
    "payload_not_available": _STR,
    "availability": (list,),
    "availability_mode": _STR,
    "device": (dict,),
    "origin": (dict,),
    "enabled_by_default": _BOOL,
    "entity_category": _STR,
    "icon": _STR,
    "json_attributes_topic": _STR,
    "json_attributes_template": _STR,
    "device_class": _STR,
    "expire_after": _INT,
    "force_update": _BOOL,
}
PLATFORM_KEYS = {
    "sensor": {
        **COMMON,
        "last_reset_value_template": _STR,
        "suggested_display_precision": _INT,
        "state_class": _STR,
        "unit_of_measurement": _STR,
        "options": (list,),
    },
    "binary_sensor": {**COMMON, "off_delay": _INT, "payload_on": _STR, "payload_off": _STR},
}
DEVICE_KEYS = {
    "identifiers": (list, str),
    "connections": (list,),
    "manufacturer": _STR,
    "model": _STR,
    "name": _STR,
    "hw_version": _STR,
    "serial_number": _STR,
    "sw_version": _STR,
    "via_device": _STR,
    "suggested_area": _STR,
    "configuration_url": _STR,
}
AVAILABILITY_KEYS = {
    "topic": _STR,
    "payload_available": _STR,
    "payload_not_available": _STR,
    "value_template": _STR,
}


def _subscribe_topic(topic: Any) -> bool:
    """HA's ``valid_subscribe_topic``: non-empty, no NUL, wildcards only as whole levels."""
    if not isinstance(topic, str) or not topic or "\0" in topic or len(topic) > 65535:
        return False
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def _template(text: str) -> list[str]:
    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [f"template {text!r} does not parse: {exc}"]
    return []


def validate(platform: str, config: dict[str, Any]) -> list[str]:
    """What HA's discovery schema of ``platform`` refuses in ``config`` (empty: accepted)."""
    errors: list[str] = []
    keys = PLATFORM_KEYS[platform]
    for key, value in config.items():
        if key not in keys:
            errors.append(f"unknown key {key!r} (HA drops it)")
        elif isinstance(value, bool) and bool not in keys[key]:
            errors.append(f"{key} must be {keys[key]}, not a bool")
        elif not isinstance(value, keys[key]):
            errors.append(f"{key} must be {keys[key]}, got {type(value).__name__}")
    if not _subscribe_topic(config.get("state_topic")):
        errors.append("state_topic is required and must be a valid subscribe topic")
    for key in ("json_attributes_topic", "availability_topic"):
        if key in config and not _subscribe_topic(config[key]):
            errors.append(f"{key} is not a valid subscribe topic")
    if "availability" in config and "availability_topic" in config:
        errors.append("availability and availability_topic are exclusive")
    for item in config.get("availability") or ():
        if not isinstance(item, dict) or not _subscribe_topic(item.get("topic")):
            errors.append(f"availability item {item!r} needs a valid topic")
            continue
        errors += [f"availability key {k!r}" for k in item if k not in AVAILABILITY_KEYS]
        if "value_template" in item:
            errors += _template(item["value_template"])
    if config.get("availability_mode", "latest") not in ("all", "any", "latest"):
        errors.append("availability_mode must be all, any or latest")
    for key in ("expire_after", "off_delay", "suggested_display_precision"):
        if key in config and not (isinstance(config[key], int) and config[key] >= 0):
            errors.append(f"{key} must be a positive integer")
    for key in ("value_template", "json_attributes_template", "availability_template"):
        if isinstance(config.get(key), str):
            errors += _template(config[key])
    category = config.get("entity_category")
    if category is not None and category not in ("config", "diagnostic"):
        errors.append("entity_category must be config or diagnostic")
    if platform == "sensor" and category == "config":
        errors.append("a sensor cannot have entity_category config")
    device_class = config.get("device_class")
    if platform == "binary_sensor" and device_class not in (None, *BINARY_DEVICE_CLASSES):
        errors.append(f"device_class {device_class!r} is not a binary sensor class")
    if platform == "sensor":
        if device_class not in (None, *SENSOR_DEVICE_CLASSES):
            errors.append(f"device_class {device_class!r} is not a sensor class")
        state_class = config.get("state_class")
        if state_class not in (None, *STATE_CLASSES):
            errors.append(f"state_class {state_class!r} is not a state class")
        if state_class is not None and device_class in ("enum", "timestamp", "date"):
            errors.append(f"state_class is not allowed with device_class {device_class}")
        if device_class in ("timestamp", "date") and "unit_of_measurement" in config:
            errors.append("a timestamp has no unit_of_measurement")
    device = config.get("device")
    if device is not None:
        errors += [f"device key {k!r}" for k in device if k not in DEVICE_KEYS]
        if not (device.get("identifiers") or device.get("connections")):
            errors.append("device needs identifiers or connections")
        for key, value in device.items():
            if key in DEVICE_KEYS and not isinstance(value, DEVICE_KEYS[key]):
                errors.append(f"device {key} must be {DEVICE_KEYS[key]}")
    return errors


def _render(template: str, payload: str) -> str:
    env = jinja2.Environment()
    try:
        value_json = json.loads(payload)
    except ValueError:
        value_json = None
    return env.from_string(template).render(value_json=value_json, value=payload).strip()


def simulate(platform: str, config: dict[str, Any], messages: dict[str, str]) -> dict[str, Any]:
    """What HA makes of the retained ``messages`` (topic → payload) for one entity.

    Returns
    -------
    dict
        ``available`` (bool), ``state`` (the rendered state or None), ``attributes``
        (dict or None) and ``errors``: what HA would log and reject (a non-numeric value
        for a ``measurement`` sensor, a non-ISO ``timestamp``, a binary state other than
        the payloads, attributes that are not a JSON object).
    """
    errors: list[str] = []
    verdicts = []
    items = list(config.get("availability", ()))
    if "availability_topic" in config:
        items.append({"topic": config["availability_topic"], **{
            k: config[k] for k in ("payload_available", "availability_template") if k in config
        }})  # fmt: skip
        if "availability_template" in items[-1]:
            items[-1]["value_template"] = items[-1].pop("availability_template")
    for item in items:
        payload = messages.get(item["topic"])
        if payload is None:
            verdicts.append(False)
            continue
        if "value_template" in item:
            payload = _render(item["value_template"], payload)
        verdicts.append(payload == item.get("payload_available", "online"))
    mode = config.get("availability_mode", "latest")
    available = (all(verdicts) if mode == "all" else any(verdicts)) or not items
    out: dict[str, Any] = {"available": available, "state": None, "attributes": None}
    if available and config["state_topic"] in messages:
        state = _render(
            config.get("value_template", "{{ value }}"), messages[config["state_topic"]]
        )
        out["state"] = state
        if platform == "binary_sensor":
            if state not in (config.get("payload_on", "ON"), config.get("payload_off", "OFF")):
                errors.append(f"binary state {state!r} is neither payload_on nor payload_off")
        elif config.get("state_class") is not None:
            try:
                float(state)
            except ValueError:
                errors.append(f"non-numeric value {state!r} for a measurement sensor")
        elif config.get("device_class") == "timestamp":
            try:
                if datetime.fromisoformat(state).tzinfo is None:
                    errors.append(f"timestamp {state!r} has no UTC offset")
            except ValueError:
                errors.append(f"invalid timestamp {state!r}")
    attrs_topic = config.get("json_attributes_topic")
    if available and attrs_topic in messages:
        text = messages[attrs_topic]
        if "json_attributes_template" in config:
            text = _render(config["json_attributes_template"], text)
        try:
            attributes = json.loads(text)
        except ValueError:
            attributes = None
        if not isinstance(attributes, dict):
            errors.append(f"json attributes {text[:80]!r} are not a JSON object")
        out["attributes"] = attributes
    out["errors"] = errors
    return out
