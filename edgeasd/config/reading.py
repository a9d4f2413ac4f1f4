"""The configuration file, read with bounded cost: its size, its YAML, what YAML may build.

Everything here turns a hostile or broken file into a :class:`~edgeasd.errors.ConfigError`
naming the file and what is wrong, never another exception: the daemon reloads its
configuration on SIGHUP and on a ``reload`` request (which any operator in the socket's group
may send), and a reload that raised anything else killed it (issue 20: an unhashable key, a
5,000-digit integer). The cost of a reload is bounded too:

- the file is at most :data:`MAX_CONFIG_BYTES` (a 50 MB file took 29 s to parse and stalled
  window processing for 46 s on a reload);
- YAML aliases are refused: a 1 KB "billion laughs" file in one key expanded to 13 GB;
- integers are at most :data:`MAX_INT_DIGITS` digits (Python refuses to convert longer
  ones to text);
- the file is opened as a regular file only, without blocking (a FIFO would hang).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from edgeasd.errors import ConfigError
from edgeasd.infile import open_regular

#: Largest configuration file accepted, in bytes. The documented template
#: (``configs/edgeasd.yaml``, every key with its comment) is 13 KB; 64 KiB is five times
#: that. Parsing 64 KiB took 0.07 s (the template padded with comments) to 0.26 s (64 KiB
#: of list entries, the densest YAML the schema accepts) with the pure-Python parser on 2
#: shared x86 cores: the longest a reload parses, in a thread of its own.
MAX_CONFIG_BYTES = 65536
#: Longest integer accepted, in digits: far beyond any setting (bytes caps are < 2**44,
#: 14 digits), far below Python's 4,300-digit limit on converting integers to text.
MAX_INT_DIGITS = 40

_HELP = "fix the YAML syntax (indentation with spaces, 'key: value' pairs)"


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader refusing duplicate and unhashable keys, aliases and huge integers."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse an alias (``*name``) before it is expanded."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"YAML aliases are not allowed (found *{event.anchor})",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, list | dict | set):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a key must be a plain value, not a list or mapping",
                key_node.start_mark,
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_shown(key)}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


def _int(loader: StrictLoader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isdigit() for c in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"an integer of {digits} digits (at most {MAX_INT_DIGITS} are allowed)",
            node.start_mark,
        )
    return loader.construct_yaml_int(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
StrictLoader.add_constructor("tag:yaml.org,2002:int", _int)


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 1000 else "<int>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_yaml(path: Path) -> Any:
    """Parse a configuration file, refusing what would make it costly or crash.

    Parameters
    ----------
    path : Path
        The YAML file.

    Returns
    -------
    Any
        What the YAML holds (a mapping for a valid configuration; checked by the caller).

    Raises
    ------
    ConfigError
        Missing, unreadable, not a regular file, over :data:`MAX_CONFIG_BYTES`, not UTF-8,
        invalid YAML (the message names the line), an alias, a duplicate or unhashable
        key, an over-long integer, or nesting too deep to parse.
    """
    if not os.path.lexists(path):
        raise ConfigError(
            f"configuration file {path} does not exist",
            help="pass --config with an existing file; configs/edgeasd.yaml is a template",
        )
    fd = open_regular(path, str(path), "a configuration file", ConfigError)
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"configuration file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB",
            help="a configuration needs a few KB (configs/edgeasd.yaml documents every key "
            "in 13 KB): is this the right file?",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read configuration file {path}: not UTF-8 text ({exc.reason} at byte "
            f"{exc.start})",
            help="save the file as UTF-8 text",
        ) from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{path}:{where}: invalid YAML: {problem}",
            help="write each key once" if problem.startswith("duplicate key") else _HELP,
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply", help=_HELP) from None
    except (ValueError, TypeError, OverflowError) as exc:  # what a constructor may raise
        raise ConfigError(f"{path}: invalid YAML: {_shown(str(exc), 200)}", help=_HELP) from None
