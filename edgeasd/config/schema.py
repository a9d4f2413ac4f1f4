"""The configuration's field schema: field specs and the generic checks behind them.

:func:`_opt` declares a dataclass field together with its schema (accepted types,
choices, numeric bounds, whether it is a path). :func:`_build_section` turns one YAML
section (a mapping) into its dataclass, checking every value with :func:`_check_value`
and naming the key path and what is allowed when it fails; unknown keys get a
did-you-mean suggestion (:func:`_unknown`). Nothing here knows the sections themselves:
those, with :func:`~edgeasd.config.load_config`, live in :mod:`edgeasd.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from edgeasd.errors import ConfigError

_NULL = type(None)

#: Longest string value accepted, in characters: a path may be 4,096 bytes (Linux
#: ``PATH_MAX``), and nothing else in a configuration comes close.
MAX_STRING_CHARS = 4096
#: Longest path accepted, in bytes (Linux ``PATH_MAX`` less the terminating NUL), and
#: longest component of one (``NAME_MAX``): longer ones fail at the first use
#: (``File name too long``) after ``config check`` said ok (issue 20).
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255
#: Most characters of a value quoted in an error message: a value may be huge (a
#: configuration's strings are capped, but a message must never print megabytes).
SHOWN_CHARS = 60


def shown(value: Any) -> str:
    """``repr(value)`` for a message, cut to :data:`SHOWN_CHARS` (containers not expanded)."""
    if isinstance(value, Mapping | list | tuple) and len(value) > 8:
        return f"<{type(value).__name__} of {len(value)} entries>"
    if isinstance(value, int) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _opt(
    default: Any,
    types: tuple[type, ...],
    *,
    choices: tuple[Any, ...] | None = None,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    path: bool = False,
) -> Any:
    """A dataclass field with its schema in ``metadata``.

    Parameters
    ----------
    default : Any
        Default value (immutable).
    types : tuple of type
        Accepted Python types after YAML parsing (``type(None)`` allows null). ``int``
        is accepted where ``float`` is, ``bool`` never counts as a number. ``list``
        allows a non-empty list of strings (each checked like a string value), stored
        as a tuple.
    choices : tuple, optional
        Allowed string values.
    lo, hi : float, optional
        Inclusive numeric bounds (exclusive when ``lo_open`` / ``hi_open``).
    path : bool
        The value is a file system path, resolved against the config file's folder.
    """
    spec = {"types": types, "choices": choices, "lo": lo, "hi": hi}
    spec.update(lo_open=lo_open, hi_open=hi_open, path=path)
    return field(default=default, metadata={"spec": spec})


def _unknown(key: str, allowed: Mapping[str, Any], prefix: str) -> str:
    where = f"{prefix}{key}"
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return f"unknown key '{where}'{hint}"


def _describe(spec: dict[str, Any]) -> str:
    """What a field allows, in words, for error messages."""
    parts = []
    types = spec["types"]
    if spec["choices"]:
        parts.append(" or ".join(repr(c) for c in spec["choices"]))
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    names[list] = "a non-empty list of strings"
    for t in types:
        if t is _NULL:
            continue
        if t is str and spec["choices"]:
            continue
        text = names[t]
        if t in (int, float) and (spec["lo"] is not None or spec["hi"] is not None):
            lo = "" if spec["lo"] is None else f"{'>' if spec['lo_open'] else '>='} {spec['lo']:g}"
            hi = "" if spec["hi"] is None else f"{'<' if spec['hi_open'] else '<='} {spec['hi']:g}"
            text += " " + " and ".join(p for p in (lo, hi) if p)
        parts.append(text)
    if _NULL in types:
        parts.append("null")
    return ", or ".join(parts)


def _check_value(key: str, value: Any, spec: dict[str, Any]) -> Any:
    """Validate one value against its spec; returns it (ints widened to float)."""
    types = spec["types"]
    allowed = _describe(spec)
    if value is None:
        if _NULL in types:
            return None
        raise ConfigError(f"'{key}' must not be null; allowed: {allowed}")
    if isinstance(value, (list, tuple)):
        return _check_list(key, value, spec, allowed)
    is_bool = isinstance(value, bool)
    if is_bool and bool not in types:
        raise ConfigError(f"'{key}' is {value!r}; allowed: {allowed}")
    if isinstance(value, str):
        if str not in types:
            raise ConfigError(f"'{key}' is the string {shown(value)}; allowed: {allowed}")
        if len(value) > MAX_STRING_CHARS:
            raise ConfigError(
                f"'{key}' is a string of {len(value)} characters; at most {MAX_STRING_CHARS} "
                "are allowed"
            )
        if spec["choices"] and value not in spec["choices"]:
            close = difflib.get_close_matches(value, spec["choices"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"'{key}' is {shown(value)}{hint}; allowed: {allowed}")
        if not value.strip():
            raise ConfigError(f"'{key}' is an empty string; allowed: {allowed}")
        return value
    if is_bool:
        return value
    if isinstance(value, int) and int not in types and float in types:
        value = float(value)
    if isinstance(value, float) and float in types:
        if not math.isfinite(value):
            raise ConfigError(f"'{key}' is {value}; allowed: {allowed}")
    elif not (isinstance(value, int) and int in types):
        kind = type(value).__name__
        raise ConfigError(f"'{key}' is a {kind} ({shown(value)}); allowed: {allowed}")
    lo, hi = spec["lo"], spec["hi"]
    if (lo is not None and (value < lo or (spec["lo_open"] and value == lo))) or (
        hi is not None and (value > hi or (spec["hi_open"] and value == hi))
    ):
        raise ConfigError(f"'{key}' is {shown(value)}, out of range; allowed: {allowed}")
    return value


def _check_list(key: str, value: list | tuple, spec: dict[str, Any], allowed: str) -> tuple:
    """Validate a list value (``list`` in the spec's types): non-empty, strings only."""
    if list not in spec["types"]:
        raise ConfigError(f"'{key}' is a list ({shown(list(value))}); allowed: {allowed}")
    if not value:
        raise ConfigError(f"'{key}' is an empty list; allowed: {allowed}")
    item_spec = {**spec, "types": (str,)}
    for i, item in enumerate(value):
        if isinstance(item, (list, tuple, Mapping)):
            kind = "list" if isinstance(item, (list, tuple)) else "mapping"
            raise ConfigError(
                f"'{key}[{i}]' is a {kind} ({shown(item)}); each entry of '{key}' is a string"
            )
        _check_value(f"{key}[{i}]", item, item_spec)
    return tuple(value)


def _resolve_path(key: str, value: str, base: Path | None) -> str:
    """``~`` expanded; relative to ``base`` (the config file's folder) when given.

    Raises
    ------
    ConfigError
        A NUL byte, a path over :data:`MAX_PATH_BYTES` or a component over
        :data:`MAX_NAME_BYTES` (each would fail at its first use, with a traceback).
    """
    if "\0" in value:
        raise ConfigError(
            f"'{key}' holds a NUL byte ({shown(value)})", help="a path cannot contain NUL"
        )
    value = os.path.expanduser(value)
    if base is not None and not os.path.isabs(value):
        value = str(base / value)
    raw = os.fsencode(value)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if len(raw) > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        raise ConfigError(
            f"'{key}' is too long a path ({shown(value)}: {len(raw)} bytes, its longest "
            f"name {longest})",
            help=f"paths are at most {MAX_PATH_BYTES} bytes, each folder or file name at "
            f"most {MAX_NAME_BYTES}",
        )
    return value


def _build_section(name: str, cls: type, values: Any, base: Path | None) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"'{name}' must be a mapping of keys, got {type(values).__name__}",
            help=f"write '{name}:' followed by indented 'key: value' lines",
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        key = key if isinstance(key, str) else shown(key)
        if key not in fields:
            raise ConfigError(
                _unknown(key[:SHOWN_CHARS], fields, f"{name}."),
                help=f"keys of '{name}': " + ", ".join(fields),
            )
        spec = fields[key].metadata["spec"]
        value = _check_value(f"{name}.{key}", value, spec)
        if spec["path"] and isinstance(value, tuple):
            value = tuple(_resolve_path(f"{name}.{key}", v, base) for v in value)
            if len(set(value)) < len(value):
                twice = next(v for v in value if value.count(v) > 1)
                raise ConfigError(
                    f"'{name}.{key}' lists {twice} more than once",
                    help="list each file once (a repeated model would count double)",
                )
        elif spec["path"] and value is not None:
            value = _resolve_path(f"{name}.{key}", value, base)
        kwargs[key] = value
    return cls(**kwargs)
