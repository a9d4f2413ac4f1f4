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

This module holds the sections, their cross-key checks and the YAML loading; the
generic field-spec machinery (:func:`_opt`, value checks, path resolution, building a
section from a mapping) is in :mod:`edgeasd.config.schema`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeasd.config import fleet as config_fleet
from edgeasd.config.fleet import MetricsConfig, MqttConfig
from edgeasd.config.reading import read_yaml
from edgeasd.config.schema import _NULL, SHOWN_CHARS, _build_section, _opt, _unknown, shown
from edgeasd.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """``model``: the ONNX embedding model, or an ensemble of them.

    ``path`` is null (the shipped default), one file (a string) or, in YAML, a list of
    files, stored as a tuple: an ensemble whose cosine distances are averaged
    (``edgeasd.embedding.ensemble``).
    """

    path: str | tuple[str, ...] | None = _opt(None, (str, list, _NULL), path=True)
    threads: int = _opt(1, (int,), lo=1, hi=64)

    @property
    def paths(self) -> tuple[str, ...]:
        """The configured model files: ``()`` for the shipped default, else one or more."""
        if self.path is None:
            return ()
        return (self.path,) if isinstance(self.path, str) else tuple(self.path)


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
    # edgeasd.scoring.density_rules.DEFAULT_DENSITY_CAP and DEFAULT_DENSITY_RULE (a test
    # keeps them equal)
    density_cap: float | None = _opt(1.5, (float, _NULL), lo=0.0, lo_open=True, hi=1e6)
    density_rule: str = _opt("condition", (str,), choices=("paper", "cap", "condition"))
    min_references: int = _opt(10, (int,), lo=1, hi=1000000)
    #: Most references the bank keeps; above it a reduction (edgeasd/scoring/reduce.py)
    #: brings it to 90 % of the cap. 10,000 windows are 28 h of enrolled audio (years of
    #: feedback at a few episodes a day); at that size a window scores in about 1 ms, the
    #: bank is 23 MiB at dim 512 and a from-scratch build takes 3 s (BENCHMARKS.md,
    #: section costs). null: no cap.
    max_references: int | None = _opt(10000, (int, _NULL), lo=100, hi=10000000)


@dataclass(frozen=True)
class ThresholdConfig:
    """``threshold``: how the bank derives its single decision threshold.

    The names and defaults are those of ``edgeasd.scoring.calibrate`` (a test keeps
    them equal): ``auto`` = the largest calibration score x its margin (``FORWARD_MARGIN``
    on session-forward evidence, ``ONE_SESSION_MARGIN`` on one session's; with
    ``value`` as a floor if set), ``quantile`` / ``gamma`` (DCASE baseline's gamma-fit
    percentile) of leave-one-group-out scores, or ``fixed``. ``value`` null = for
    ``fixed`` the bank's default constant for the normalization (3.0 for ratio), for
    ``auto`` no floor.
    """

    rule: str = _opt("auto", (str,), choices=("auto", "quantile", "gamma", "fixed"))
    q: float = _opt(0.95, (float,), lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    value: float | None = _opt(None, (float, _NULL))


@dataclass(frozen=True)
class DetectorConfig:
    """``detector``: k-of-n debounce of threshold exceedances."""

    k: int = _opt(1, (int,), lo=1, hi=1000)
    n: int = _opt(1, (int,), lo=1, hi=1000)
    #: Repeat a ``reminder`` (with the episode's peak score) this often while an anomaly
    #: lasts; 0 = never. One hour: an operator who missed the alert hears of it again
    #: within a shift, while a day-long episode adds 24 lines, not one per window.
    reminder_seconds: float = _opt(3600.0, (float,), lo=0.0, hi=7 * 86400.0)


@dataclass(frozen=True)
class QualityConfig:
    """``quality``: signal checks (keyword arguments of ``edgeasd.audio.quality.assess``)
    and the no-signal alert."""

    silence_dbfs: float = _opt(-70.0, (float,), lo=-240.0, hi=0.0)
    clip_level: float = _opt(0.999, (float,), lo=0.0, lo_open=True, hi=1.0)
    clip_fraction: float = _opt(0.001, (float,), lo=0.0, lo_open=True, hi=1.0)
    dead_range: float = _opt(1.0 / 32768.0, (float,), lo=0.0, hi=2.0)
    #: Windows without signal (dead, silence, invalid) lasting this long raise an ``alert``
    #: of kind ``no_signal``; 0 = never. 60 s: six default 10 s windows, so one dropped
    #: window (a knocked cable) pages nobody, while a dead microphone is an incident
    #: reported within a minute.
    no_signal_alert_seconds: float = _opt(60.0, (float,), lo=0.0, hi=7 * 86400.0)
    # 10 ms at 16 kHz; see edgeasd.audio.quality.DROPOUT_SAMPLES for the measurement
    dropout_samples: int = _opt(160, (int,), lo=1, hi=10_000_000)


@dataclass(frozen=True)
class PathsConfig:
    """``paths``: where state, runtime files and logs go.

    null = systemd's directories, else the service's own when the configuration is the
    system one (``/etc/edgeasd/*.yaml``), else per-user XDG defaults (``edgeasd.config.paths``).
    """

    state_dir: str | None = _opt(None, (str, _NULL), path=True)
    runtime_dir: str | None = _opt(None, (str, _NULL), path=True)
    log_dir: str | None = _opt(None, (str, _NULL), path=True)


@dataclass(frozen=True)
class LogsConfig:
    """``logs``: size-capped rotation of ``alerts.jsonl`` and ``scores.jsonl``.

    ``alert_audio_max_bytes`` caps the kept audio of alerted windows
    (``edgeasd.agent.alerts.alert_audio``; 0 keeps none). Default 64 MiB: a 10 s window at 16
    kHz is ~255 kB as FLAC (measured on the demo machine, normal and faulty), so ~260 alerts,
    each one anomaly episode.
    """

    max_bytes: int = _opt(10485760, (int,), lo=4096, hi=2**40)
    backups: int = _opt(5, (int,), lo=0, hi=1000)
    alert_audio_max_bytes: int = _opt(67108864, (int,), lo=0, hi=2**44)


@dataclass(frozen=True)
class EnrollmentConfig:
    """``enrollment``: grouping of enrolled windows, and keeping their audio for re-embedding.

    ``group_seconds``: an enrollment (a ``--next N`` request, a file) is one recording
    group, split only into groups of at most this much contiguous audio (1 h; 60 s until
    issue 17: ``edgeasd.agent.enrollment.enroll.DEFAULT_GROUP_SECONDS`` says why). Windows
    within a group are near twins and do not define each other's density
    (``scoring.exclude_same_group``) and are left out together in calibration; windows of
    different groups count as independent samples.
    """

    group_seconds: float = _opt(3600.0, (float,), lo=0.0, lo_open=True, hi=86400.0)
    keep_audio: bool = _opt(True, (bool,))
    audio_max_bytes: int = _opt(268435456, (int,), lo=0, hi=2**44)
    #: Most audio one file enrollment request may hold (see
    #: edgeasd.agent.enrollment.file_enrollment.DEFAULT_MAX_REQUEST_SECONDS for where 2 h comes
    #: from).
    max_request_seconds: float = _opt(7200.0, (float,), lo=0.0, lo_open=True, hi=2**31)
    #: Most audio one ``enroll --next N`` request may collect (N times the hop): one hour
    #: keeps the time alerts are suppressed bounded (issue 10: ``--next 10**18`` suppressed
    #: them for ever) while an hour of normal operation is more than a domain shift needs.
    max_next_seconds: float = _opt(3600.0, (float,), lo=0.0, lo_open=True, hi=2**31)


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
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    #: The file this configuration was loaded from (None for built-in defaults).
    origin: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The configuration as plain nested dicts (YAML/JSON-serializable, no ``origin``)."""
        return {
            f.name: {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(getattr(self, f.name)).items()
            }
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


#: Folders that ``paths.*`` may never name: the agent creates, locks, rotates and deletes
#: files in its folders (issue 20: ``paths: {state_dir: /}`` passed ``config check`` and
#: ``doctor``; ``runtime_dir: /tmp`` had its mode changed). A folder of its own below one
#: of them (``/var/lib/edgeasd``) is what they are for.
SYSTEM_FOLDERS = frozenset(
    """/ /bin /boot /dev /etc /home /lib /lib64 /media /mnt /opt /proc /root /run /sbin /srv
    /sys /tmp /usr /var /usr/bin /usr/lib /usr/local /usr/sbin /usr/share /var/cache /var/lib
    /var/log /var/run /var/tmp /dev/shm /run/user""".split()
)


def _check_paths(paths: PathsConfig) -> None:
    """Refuse a ``paths.*`` folder that is a system folder (:data:`SYSTEM_FOLDERS`)."""
    for name in ("state_dir", "runtime_dir", "log_dir"):
        value = getattr(paths, name)
        if (
            value
            and os.path.isabs(value)
            and "/" + os.path.normpath(value).lstrip("/") in SYSTEM_FOLDERS
        ):
            raise ConfigError(
                f"'paths.{name}' is {value}, a system folder",
                help=f"give the agent a folder of its own, e.g. {value.rstrip('/')}/edgeasd "
                "(it creates, locks and deletes files there)",
            )


def _cross_checks(config: Config) -> None:
    """Constraints between keys."""
    _check_paths(config.paths)
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
    if sc.max_references is not None and sc.max_references < sc.min_references:
        raise ConfigError(
            f"'scoring.max_references' ({sc.max_references}) is below "
            f"'scoring.min_references' ({sc.min_references})",
            help="raise scoring.max_references or lower scoring.min_references",
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
    config_fleet.check(config.mqtt, config.metrics)


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
    config_fleet.refuse_secrets(data)
    base = Path(origin).resolve().parent if origin else None
    sections = {}
    for name, values in data.items():
        name = name if isinstance(name, str) else shown(name)
        if name not in _SECTIONS:
            raise ConfigError(_unknown(name[:SHOWN_CHARS], _SECTIONS, ""), help=_SECTIONS_HELP)
        try:
            sections[name] = _build_section(name, _SECTIONS[name], values, base)
        except ConfigError as exc:
            if exc.help is None:
                exc.help = _KEYS_HELP
            raise
    config = Config(**sections, origin=origin)
    _cross_checks(config)
    return config


def load_config(path: str | os.PathLike[str] | None, *, reload: bool = False) -> Config:
    """Load and validate a YAML configuration file.

    Parameters
    ----------
    path : path-like or None
        The YAML file; ``None`` returns the built-in defaults.
    reload : bool
        A running daemon reloads it: an empty file (no YAML document) is refused rather
        than read as "every setting at its default" -- it is most often a file being
        written (``>`` truncates first), and the defaults would switch the source to the
        microphone. ``{}`` resets every setting on purpose.

    Returns
    -------
    Config
        The validated configuration, ``origin`` set to the file's path.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or too large, is not valid YAML (message names
        the line; see :func:`edgeasd.config.reading.read_yaml`), or does not match the
        schema (message names the key path). The message is prefixed with the file name.
    """
    if path is None:
        return Config()
    path = Path(path)
    data = read_yaml(path)
    if reload and data is None:
        raise ConfigError(
            f"configuration file {path} is empty (being written?)",
            help="write the configuration whole (e.g. to a temporary file, then `mv` it); "
            "to reset every setting to its default, write `{}`",
        )
    try:
        return config_from_dict(data, origin=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", help=exc.help) from None
