"""``edgeasd doctor``: check everything the agent needs, one line per check.

Checks, in order (later ones are skipped when the configuration cannot be loaded):
``config`` (loads and validates), ``paths`` (state/runtime/log directories writable),
``source`` (file sources: the path exists and holds audio), ``model`` (loads, metadata),
``bank`` (loads, a model that can score it, enough references), ``device`` (microphone
sources only: records 0.5 s and judges it with the configuration's ``quality`` thresholds),
``mqtt`` (the broker answers, TLS verified), ``metrics`` (the HTTP port can be served),
``unit`` (the installed unit's sandbox lets the service reach both; see
:mod:`edgeasd.fleet.reach`), ``numba`` (cache directory writable), ``disk`` (free space for
the logs, the alert audio and the kept
enrollment audio, per file system).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeasd.errors import EdgeasdError

#: Seconds the device check records.
RECORD_SECONDS = 0.5
#: The device check's advice for trying the agent without a working microphone.
TRY_WITHOUT = (
    "to try the agent without a microphone, set source.kind: file (with source.path, a "
    "recording) or source.kind: demo (a simulated machine)"
)


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes
    ----------
    name : str
    level : {"ok", "warn", "fail"}
    detail : str
        What was found.
    help : str or None
        What to do about a warning or failure.
    """

    name: str
    level: str
    detail: str
    help: str | None = None


def _fail(name: str, exc: EdgeasdError) -> Check:
    return Check(name, "fail", exc.message, exc.help)


def run_checks(config_path: str | os.PathLike[str] | None) -> Iterator[Check]:
    """Run all checks, yielding each result as soon as it is known."""
    from edgeasd.config import load_config
    from edgeasd.config.paths import resolve_paths

    try:
        config = load_config(config_path)
    except EdgeasdError as exc:
        yield _fail("config", exc)
        return
    yield Check("config", "ok", f"{config.origin or 'built-in defaults'} is valid")
    paths = resolve_paths(config)
    try:
        paths.ensure()
        yield Check("paths", "ok", f"state {paths.state_dir}, logs {paths.log_dir}")
    except EdgeasdError as exc:
        yield _fail("paths", exc)
        return
    from edgeasd.agent.runloop.stages import source_options
    from edgeasd.audio.factory import check_source

    if config.source.kind == "file":
        try:
            check_source(*source_options(config))
            yield Check("source", "ok", f"file source {config.source.path} holds audio")
        except EdgeasdError as exc:
            yield _fail("source", exc)
    info = None
    try:
        from edgeasd.agent.runloop.stages import check_window, make_embedder

        info = make_embedder(config).info
        check_window(config, info)
        yield Check(
            "model",
            "ok",
            f"{info.id}: {info.window_seconds:g} s at "
            f"{info.sample_rate} Hz, {info.dim}-d {info.metric}"
            + (f"; averages {', '.join(info.members)}" if info.members else ""),
        )
    except EdgeasdError as exc:
        yield _fail("model", exc)
    if info is not None:
        yield _bank_check(paths.bank, config, info)
    if config.source.kind == "microphone":
        yield _device_check(config, info.sample_rate if info else 16000)
    yield from _network_checks(config)
    yield _numba_check(paths.numba_cache)
    yield _disk_check(paths, config)


def _network_checks(config: object) -> Iterator[Check]:
    """MQTT broker, metrics port and the installed unit's sandbox (each when it applies)."""
    from edgeasd.fleet import reach

    found = [
        ("mqtt", reach.check_broker(config.mqtt)),
        ("metrics", reach.check_metrics_port(config.metrics)),
        *(("unit", r) for r in reach.check_sandbox(config.mqtt, config.metrics)),
    ]
    for name, result in found:
        if result is not None:
            yield Check(name, result.level, result.detail, result.help)


def _bank_check(path: Path, config: object, info: object) -> Check:
    from edgeasd.agent.enrollment import bank_lifecycle
    from edgeasd.agent.runloop.stages import open_model_and_bank

    if not path.exists():
        return Check(
            "bank",
            "warn",
            f"no bank yet at {path} (the agent starts learning)",
            "enroll normal operation: `edgeasd enroll --next N` or `edgeasd enroll FILE...`",
        )
    try:
        embedder, bank, note = open_model_and_bank(config, path)
    except EdgeasdError as exc:
        return _fail("bank", exc)
    if note:  # an older shipped model scores it: works, and says how to move on
        return Check("bank", "warn", f"{len(bank)} references; {note}")
    info = embedder.info
    from edgeasd.agent.alerts import decision

    per = ", ".join(f"{d}: {n}" for d, n in bank_lifecycle.bank_summary(bank).items())
    state = decision.bank_state(bank, config, config.window.hop_seconds or info.window_seconds)
    detail = f"{len(bank)} references ({per}); {state.state}"
    if state.learning:
        return Check("bank", "warn", detail, state.learning)
    if not state.calibrated:
        return Check("bank", "warn", f"{detail}: {state.threshold_source}", _CALIBRATE_HELP)
    if state.warnings:
        return Check("bank", "warn", f"{detail}; " + "; ".join(state.warnings))
    return Check("bank", "ok", f"{detail}, threshold {state.threshold:.4g}")


_CALIBRATE_HELP = (
    "enroll normal audio of another recording or session, or set threshold.rule: fixed "
    "with threshold.value"
)


def _device_check(config: object, sample_rate: int) -> Check:
    """Record :data:`RECORD_SECONDS` and judge them with the configuration's ``quality``."""
    try:
        from edgeasd.agent.runloop.stages import quality_options
        from edgeasd.audio.microphone import record

        src = config.source
        rec = record(
            RECORD_SECONDS,
            device=src.device,
            sample_rate=sample_rate,
            quality=quality_options(config),
            channels=src.channels,
            capture_rate=src.capture_rate,
            capture_channels=src.capture_channels,
        )
    except EdgeasdError as exc:
        why = f"{exc.help}; " if exc.help else ""
        return Check("device", "fail", exc.message, f"{why}{TRY_WITHOUT}")
    q = rec.quality
    detail = f"{rec.device!r}: {RECORD_SECONDS} s at {q.rms_dbfs:.1f} dBFS, peak {q.peak:.3f}"
    if q.status != "ok":
        return Check(
            "device",
            "fail",
            f"{detail}: {q.status}",
            "check that the microphone is connected, unmuted (alsamixer) and near "
            f"the running machine; {TRY_WITHOUT}",
        )
    return Check("device", "ok", detail)


def _numba_check(cache: Path) -> Check:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache):
            pass
    except OSError as exc:
        return Check(
            "numba",
            "fail",
            f"cache dir {cache} not writable: {exc.strerror}",
            "set NUMBA_CACHE_DIR to a writable folder (the unit uses "
            "CacheDirectory=edgeasd); without it every start recompiles",
        )
    return Check("numba", "ok", f"cache dir {cache} is writable")


def _disk_check(paths: object, config: object) -> Check:
    """Free space against what the agent may write, per file system.

    The logs (both, with their rotations) and the alert audio go to the log folder, the kept
    enrollment audio to the state folder; when both are on one file system their needs add
    up.
    """
    mib = 2**20
    logs = 2 * config.logs.max_bytes * (config.logs.backups + 1)
    alert_audio = config.logs.alert_audio_max_bytes
    kept = config.enrollment.audio_max_bytes if config.enrollment.keep_audio else 0
    parts = {
        paths.log_dir: [("logs", logs), ("alert audio", alert_audio)],
        paths.state_dir: [("kept audio", kept)],
    }
    disks: dict[int, tuple[Path, list[tuple[str, int]]]] = {}
    for folder, needs in parts.items():
        folder = Path(folder)
        entry = disks.setdefault(os.stat(folder).st_dev, (folder, []))
        entry[1].extend(needs)
    lines, short = [], False
    for folder, needs in disks.values():
        free, need = shutil.disk_usage(folder).free, sum(n for _, n in needs)
        short |= free < need
        what = ", ".join(f"{name} {n // mib} MiB" for name, n in needs)
        where = f" in {folder}" if len(disks) > 1 else ""
        lines.append(f"{free // mib} MiB free{where}; {what} may use {need // mib} MiB")
    detail = "; ".join(lines)
    if short:
        return Check(
            "disk",
            "warn",
            detail,
            "lower logs.max_bytes, logs.backups, logs.alert_audio_max_bytes or "
            "enrollment.audio_max_bytes (alert audio never takes the logs' room: it is "
            "skipped first)",
        )
    return Check("disk", "ok", detail)
