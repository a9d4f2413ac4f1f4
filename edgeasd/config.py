"""The agent's configuration: YAML schema, defaults and validation.

A configuration is a tree of frozen dataclasses, one per YAML section. Every field
declares its type and allowed values with :func:`_opt`; :func:`load_config` checks a
YAML file against that schema and raises :class:`~edgeasd.errors.ConfigError` naming
the key path (``detector.k``) and what is allowed. Unknown keys are errors with a
did-you-mean suggestion; YAML syntax errors name the file and line.

``configs/edgeasd.yaml`` documents every key; a test keeps its values equal to the
defaults below, so the two cannot drift apart.

Relative paths in a file (``model.path``, ``source.path``, ``paths.*``) are resolved
against the directory of that file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeasd.errors import ConfigError

_NULL = type(None)


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
        is accepted where ``float`` is, ``bool`` never counts as a number.
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


@dataclass(frozen=True)
class ModelConfig:
    """``model``: the ONNX embedding model."""

    path: str | None = _opt(None, (str, _NULL), path=True)
    threads: int = _opt(1, (int,), lo=1, hi=64)


@dataclass(frozen=True)
class SourceConfig:
    """``source``: where audio comes from."""

    kind: str = _opt("microphone", (str,), choices=("microphone", "file", "demo"))
    device: str | None = _opt(None, (str, _NULL))
    channels: str | int = _opt("mix", (str, int), choices=("mix",), lo=0, hi=255)
    capture_rate: int | None = _opt(None, (int, _NULL), lo=1000, hi=768000)
    capture_channels: int | None = _opt(None, (int, _NULL), lo=1, hi=1024)
    path: str | None = _opt(None, (str, _NULL), path=True)
    realtime: bool = _opt(True, (bool,))
    loop: bool = _opt(False, (bool,))


@dataclass(frozen=True)
class WindowConfig:
    """``window``: analysis windows cut from the stream."""

    seconds: float | None = _opt(None, (float, _NULL), lo=0.0, lo_open=True, hi=600.0)
    hop_seconds: float | None = _opt(None, (float, _NULL), lo=0.0, lo_open=True, hi=3600.0)


@dataclass(frozen=True)
class ScoringConfig:
    """``scoring``: the reference bank's local-density score normalization."""

    density: str = _opt("knn", (str,), choices=("knn", "gwrp"))
    k: int = _opt(1, (int,), lo=1, hi=10000)
    r: float | None = _opt(None, (float, _NULL), lo=0.0, hi=1.0)
    norm: str = _opt("ratio", (str,), choices=("ratio", "difference", "none"))
    exclude_same_group: bool = _opt(True, (bool,))
    min_references: int = _opt(10, (int,), lo=1, hi=1000000)


@dataclass(frozen=True)
class ThresholdConfig:
    """``threshold``: how the bank derives its single decision threshold.

    The names and defaults are those of ``edgeasd.scoring.calibrate`` (a test keeps
    them equal): ``auto`` = ``max(value, q-quantile of leave-one-group-out scores)``,
    ``quantile``, ``gamma`` (DCASE baseline's gamma-fit percentile) or ``fixed``.
    ``value`` null = the bank's default constant for the normalization (3.0 for ratio).
    """

    rule: str = _opt("auto", (str,), choices=("auto", "quantile", "gamma", "fixed"))
    q: float = _opt(0.95, (float,), lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    value: float | None = _opt(None, (float, _NULL))


@dataclass(frozen=True)
class DetectorConfig:
    """``detector``: k-of-n debounce of threshold exceedances."""

    k: int = _opt(1, (int,), lo=1, hi=1000)
    n: int = _opt(1, (int,), lo=1, hi=1000)


@dataclass(frozen=True)
class QualityConfig:
    """``quality``: signal checks; keyword arguments of ``edgeasd.audio.quality.assess``."""

    silence_dbfs: float = _opt(-70.0, (float,), lo=-240.0, hi=0.0)
    clip_level: float = _opt(0.999, (float,), lo=0.0, lo_open=True, hi=1.0)
    clip_fraction: float = _opt(0.001, (float,), lo=0.0, lo_open=True, hi=1.0)
    dead_range: float = _opt(1.0 / 32768.0, (float,), lo=0.0, hi=2.0)


@dataclass(frozen=True)
class PathsConfig:
    """``paths``: where state, runtime files and logs go.

    null = systemd's directories, else the service's own when the configuration is the
    system one (``/etc/edgeasd/*.yaml``), else per-user XDG defaults (``edgeasd.paths``).
    """

    state_dir: str | None = _opt(None, (str, _NULL), path=True)
    runtime_dir: str | None = _opt(None, (str, _NULL), path=True)
    log_dir: str | None = _opt(None, (str, _NULL), path=True)


@dataclass(frozen=True)
class LogsConfig:
    """``logs``: size-capped rotation of ``alerts.jsonl`` and ``scores.jsonl``."""

    max_bytes: int = _opt(10485760, (int,), lo=4096, hi=2**40)
    backups: int = _opt(5, (int,), lo=0, hi=1000)


@dataclass(frozen=True)
class EnrollmentConfig:
    """``enrollment``: grouping of enrolled windows, and keeping their audio for re-embedding.

    ``group_seconds``: an enrollment (a ``--next N`` request, a file) is split into groups
    of at most this much contiguous audio. Windows within a group are near twins and do
    not define each other's density (``scoring.exclude_same_group``) and are left out
    together in calibration; windows of different groups count as independent samples.
    """

    group_seconds: float = _opt(60.0, (float,), lo=0.0, lo_open=True, hi=86400.0)
    keep_audio: bool = _opt(True, (bool,))
    audio_max_bytes: int = _opt(268435456, (int,), lo=0, hi=2**44)


@dataclass(frozen=True)
class DeviceConfig:
    """``device``: capture device loss handling."""

    retries: int = _opt(5, (int,), lo=0, hi=1000)
    retry_delay_seconds: float = _opt(5.0, (float,), lo=0.0, hi=3600.0)
    stall_seconds: float = _opt(5.0, (float,), lo=0.0, lo_open=True, hi=3600.0)


@dataclass(frozen=True)
class Config:
    """The whole agent configuration; each attribute is one YAML section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    enrollment: EnrollmentConfig = field(default_factory=EnrollmentConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    #: The file this configuration was loaded from (None for built-in defaults).
    origin: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The configuration as plain nested dicts (YAML/JSON-serializable, no ``origin``)."""
        return {
            f.name: dataclasses.asdict(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "origin"
        }

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some keys changed, validated like a file: ``replace(detector={"k": 2})``."""
        merged = self.to_dict()
        for name, values in sections.items():
            if name not in merged:
                raise ConfigError(_unknown(name, merged, ""), help=_SECTIONS_HELP)
            merged[name].update(values)
        return config_from_dict(merged, origin=self.origin)


_SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config) if f.name != "origin"}
_SECTIONS_HELP = "sections: " + ", ".join(_SECTIONS)
_KEYS_HELP = "every key is documented, with its default, in configs/edgeasd.yaml"


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
    is_bool = isinstance(value, bool)
    if is_bool and bool not in types:
        raise ConfigError(f"'{key}' is {value!r}; allowed: {allowed}")
    if isinstance(value, str):
        if str not in types:
            raise ConfigError(f"'{key}' is the string {value!r}; allowed: {allowed}")
        if spec["choices"] and value not in spec["choices"]:
            close = difflib.get_close_matches(value, spec["choices"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"'{key}' is {value!r}{hint}; allowed: {allowed}")
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
        raise ConfigError(f"'{key}' is a {kind} ({value!r}); allowed: {allowed}")
    lo, hi = spec["lo"], spec["hi"]
    if (lo is not None and (value < lo or (spec["lo_open"] and value == lo))) or (
        hi is not None and (value > hi or (spec["hi_open"] and value == hi))
    ):
        raise ConfigError(f"'{key}' is {value!r}, out of range; allowed: {allowed}")
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
        key = str(key)
        if key not in fields:
            raise ConfigError(
                _unknown(key, fields, f"{name}."),
                help=f"keys of '{name}': " + ", ".join(fields),
            )
        spec = fields[key].metadata["spec"]
        value = _check_value(f"{name}.{key}", value, spec)
        if spec["path"] and value is not None:
            value = os.path.expanduser(value)
            if base is not None and not os.path.isabs(value):
                value = str(base / value)
        kwargs[key] = value
    return cls(**kwargs)


def _cross_checks(config: Config) -> None:
    """Constraints between keys."""
    s = config.source
    if s.kind == "file" and not s.path:
        raise ConfigError(
            "'source.path' is required when 'source.kind' is 'file'",
            help="set source.path to a WAV/FLAC file or a directory of them",
        )
    sc = config.scoring
    if sc.density == "gwrp" and sc.r is None:
        raise ConfigError(
            "'scoring.r' is required when 'scoring.density' is 'gwrp'",
            help="set scoring.r to a number in [0, 1] (0 = nearest neighbour, 1 = global mean)",
        )
    if sc.density == "knn" and sc.r is not None:
        raise ConfigError(
            "'scoring.r' is only used with 'scoring.density: gwrp'",
            help="remove scoring.r or set it to null",
        )
    t = config.threshold
    if t.rule == "fixed" and t.value is None and sc.norm != "ratio":
        raise ConfigError(
            f"'threshold.value' is required when 'threshold.rule' is 'fixed' and "
            f"'scoring.norm' is {sc.norm!r}",
            help="set threshold.value to the score above which a window is anomalous "
            "(only ratio-normalized scores have a built-in default, 3.0)",
        )
    d = config.detector
    if d.k > d.n:
        raise ConfigError(
            f"'detector.k' ({d.k}) is larger than 'detector.n' ({d.n})",
            help="alert when k of the last n windows exceed the threshold: k must be <= n",
        )


def config_from_dict(data: Mapping[str, Any] | None, origin: str | None = None) -> Config:
    """Validate a nested mapping (as parsed from YAML) into a :class:`Config`.

    Parameters
    ----------
    data : mapping or None
        Section name → mapping of keys; missing sections and keys take defaults.
    origin : str, optional
        The file the mapping came from; relative paths are resolved against its folder.

    Raises
    ------
    ConfigError
        Naming the key path and what is allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"the configuration must be a mapping of sections, got {type(data).__name__}",
            help=_SECTIONS_HELP,
        )
    base = Path(origin).resolve().parent if origin else None
    sections = {}
    for name, values in data.items():
        name = str(name)
        if name not in _SECTIONS:
            raise ConfigError(_unknown(name, _SECTIONS, ""), help=_SECTIONS_HELP)
        try:
            sections[name] = _build_section(name, _SECTIONS[name], values, base)
        except ConfigError as exc:
            if exc.help is None:
                exc.help = _KEYS_HELP
            raise
    config = Config(**sections, origin=origin)
    _cross_checks(config)
    return config


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (the first would be ignored silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Load and validate a YAML configuration file.

    Parameters
    ----------
    path : path-like or None
        The YAML file; ``None`` returns the built-in defaults.

    Returns
    -------
    Config
        The validated configuration, ``origin`` set to the file's path.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, is not valid YAML (message names the line),
        or does not match the schema (message names the key path). The message is
        prefixed with the file name.
    """
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} does not exist",
            help="pass --config with an existing file; configs/edgeasd.yaml is a template",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read configuration file {path}: {exc}",
            help="check that the file exists, is readable by this user and is UTF-8 text",
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{path}:{where}: invalid YAML: {problem}",
            help="write each key once"
            if problem.startswith("duplicate key")
            else "fix the YAML syntax (indentation with spaces, 'key: value' pairs)",
        ) from None
    try:
        return config_from_dict(data, origin=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", help=exc.help) from None
