"""Building the pipeline's stages from a configuration (shared by the daemon and the CLI).

Glue that would otherwise be repeated: the embedder (the default model, one file or an
ensemble), the source's ``make_source`` arguments, the quality checks' keyword arguments,
the warm-up that compiles the numba kernels before the daemon reports ``READY=1``, and
:class:`ResilientSource`, which reopens the configured source after a device failure, a
bounded number of times.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.audio.factory import make_source
from edgeasd.audio.sources import AudioBlock
from edgeasd.config import Config
from edgeasd.embedding.ensemble import EnsembleEmbedder, load_embedder
from edgeasd.embedding.onnx import Embedder
from edgeasd.errors import ConfigError, DeviceError, ModelError
from edgeasd.scoring import ReferenceBank

if TYPE_CHECKING:
    from edgeasd.embedding.onnx import ModelInfo

log = logging.getLogger(__name__)


def make_embedder(config: Config) -> Embedder | EnsembleEmbedder:
    """The configured model on ``model.threads``.

    ``model.path`` null: the shipped default; one file: that model; a list of files: their
    :class:`~edgeasd.embedding.ensemble.EnsembleEmbedder` (a list of one: that model).
    """
    from edgeasd.embedding.models import default_model_path

    paths = config.model.paths or (default_model_path(),)
    return load_embedder(paths, threads=config.model.threads)


def open_model_and_bank(
    config: Config, bank_path: Path
) -> tuple[Embedder | EnsembleEmbedder, ReferenceBank, str | None]:
    """The model that scores the bank at ``bank_path``, the bank, and a note about the choice.

    The rule after an upgrade that changed the shipped default model: with ``model.path``
    null, a bank built by an older shipped model keeps being scored by that model while this
    release still ships it (the note says so and how to move to the default). A bank whose
    model is neither configured nor shipped is refused with the commands that re-embed it.
    A configured ``model.path`` is always used (a bank of another model is refused).

    Returns
    -------
    embedder, bank, note
        ``note`` is None when the configured (or default) model scores the bank.

    Raises
    ------
    ModelError
        The bank was built with a model this configuration and release cannot use.
    """
    from edgeasd.agent.enrollment import bank_lifecycle
    from edgeasd.embedding.models import shipped_model_for
    from edgeasd.scoring import load_bank

    embedder = make_embedder(config)
    try:
        return embedder, bank_lifecycle.open_bank(bank_path, config.scoring, embedder.info), None
    except ModelError as exc:
        if config.model.paths:
            raise
        recorded = load_bank(bank_path).meta.get("model_id")
        older = shipped_model_for(recorded) if recorded else None
        if older is None:
            where = f" --config {config.origin}" if config.origin else ""
            raise ModelError(
                f"the reference bank {bank_path} was built with the model {recorded}, which "
                f"this edgeasd does not ship any more (its default is {embedder.info.id}); "
                "scores against it would be meaningless",
                help="re-embed the kept enrollment audio with the default model, the agent "
                f"stopped: `systemctl stop edgeasd && edgeasd bank rebuild{where} && "
                f"systemctl start edgeasd` (not a service: `edgeasd bank rebuild{where}`); "
                "or set model.path to that model's file",
            ) from exc
    default_id = embedder.info.id
    embedder = load_embedder((older,), threads=config.model.threads)
    bank = bank_lifecycle.open_bank(bank_path, config.scoring, embedder.info)
    note = (
        f"the bank was built with the shipped model {embedder.info.id}; this release's "
        f"default is {default_id}: the bank keeps being scored by the model that built it. "
        "`edgeasd bank rebuild` (the agent stopped) re-embeds it with the default model"
    )
    return embedder, bank, note


def source_options(config: Config) -> tuple[str, dict[str, Any]]:
    """The source kind and its options (``make_source`` arguments) from a configuration."""
    s = config.source
    if s.kind == "microphone":
        return s.kind, {
            "device": s.device,
            "channels": s.channels,
            "capture_rate": s.capture_rate,
            "capture_channels": s.capture_channels,
            "stall_seconds": config.device.stall_seconds,
        }
    if s.kind == "file":
        return s.kind, {
            "path": s.path,
            "realtime": s.realtime,
            "loop": s.loop,
            "channel": s.channels,
        }
    return s.kind, {"realtime": s.realtime}


def check_window(config: Config, info: ModelInfo) -> None:
    """Refuse a ``window.seconds`` other than the model's (it could not embed a window).

    Raises
    ------
    ConfigError
        Naming both lengths and the fix.
    """
    seconds = config.window.seconds
    if seconds is not None and round(seconds * info.sample_rate) != info.window_samples:
        raise ConfigError(
            f"'window.seconds' is {seconds:g} but the model {info.name} takes "
            f"{info.window_seconds:g} s windows",
            help=f"set window.seconds to null (the model's length) or to {info.window_seconds:g}",
        )


def quality_options(config: Config) -> dict[str, Any]:
    """Keyword arguments of :func:`edgeasd.audio.quality.assess` (the ``quality`` section)."""
    q = config.quality
    return {
        f.name: getattr(q, f.name)
        for f in dataclasses.fields(q)
        if f.name != "no_signal_alert_seconds"  # the daemon's alert, not a level check
    }


def warm_kernels(bank: ReferenceBank, dim: int, metric: str) -> None:
    """Load what the steady state will run before the daemon reports ``READY=1``.

    With references, that is one window's scoring: numpy only below
    :data:`edgeasd.scoring.references.ONE_PASS_MIN` references, so numba (64 MB of
    resident memory, 0.6 s of start-up) is not even imported; the enrollment and
    calibration kernels load on first use (the first enrollment then takes a second or two
    more). An empty bank's first act is an enrollment: then those kernels are loaded
    (compiled, or read from the numba cache) into a throw-away bank of the same settings.
    """
    rng = np.random.default_rng(0)
    query = rng.standard_normal((1, dim)).astype(np.float32)
    if len(bank) == 0:
        bank = ReferenceBank(
            dim,
            metric=metric,
            density=bank.density,
            k=bank.k,
            r=bank.r,
            norm=bank.norm,
            exclude_same_group=bank.exclude_same_group,
            density_cap=bank.density_cap,
            density_rule=bank.density_rule,
        )
        refs = rng.standard_normal((3, dim)).astype(np.float32)
        bank.enroll(refs, domain="warm-up", group=["a", "b", "c"])
    bank.score(query, return_nearest=True)


class ResilientSource:
    """The configured source, reopened after device failures, a bounded number of times.

    Parameters
    ----------
    config : callable
        Returns the current configuration (re-read at each (re)open, so a reload applies).
    sample_rate : int
        The model's rate.
    stop : threading.Event
        Set to end :meth:`blocks` (also cuts a retry delay short).
    on_change : callable, optional
        ``on_change(problem)``: called with the error message when capture fails (a stall,
        a lost device) and with ``None`` at the first block after a failure, so that the
        daemon can log both as events.

    Attributes
    ----------
    stats : dict
        The open source's latest ``stats()`` (frames, overflows...).
    reopening : bool
        A reopen was requested and is pending.
    """

    def __init__(
        self,
        config: Callable[[], Config],
        sample_rate: int,
        stop: threading.Event,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.config, self.sample_rate, self.stop = config, sample_rate, stop
        self.on_change = on_change
        self.stats: dict[str, Any] = {}
        self.reopening = False

    def reopen(self) -> None:
        """Close and reopen the source after the current block (a changed ``source``)."""
        self.reopening = True

    def blocks(self) -> Iterator[AudioBlock]:
        """Yield blocks until the source ends or ``stop`` is set.

        Raises
        ------
        DeviceError
            ``device.retries + 1`` consecutive opens or captures failed without a block.
        """
        failures = 0
        while not self.stop.is_set():
            self.reopening = False
            cfg = self.config()
            source = None
            try:
                source = make_source(*source_options(cfg), self.sample_rate)
                for block in source.blocks():
                    if failures and self.on_change is not None:
                        self.on_change(None)
                    failures = 0
                    self.stats = source.stats()
                    yield block
                    if self.stop.is_set() or self.reopening:
                        break
                if not self.reopening:
                    return  # a file source ended, or stop
            except DeviceError as exc:
                failures += 1
                if self.on_change is not None:
                    self.on_change(exc.message)
                if failures > cfg.device.retries:
                    raise DeviceError(
                        f"audio capture failed, still after {cfg.device.retries} retries: "
                        f"{exc.message}",
                        help=exc.help or "check the microphone connection",
                    ) from None
                log.warning(
                    "audio device failed (%s); retry %d of %d in %g s",
                    exc.message,
                    failures,
                    cfg.device.retries,
                    cfg.device.retry_delay_seconds,
                )
                self.stop.wait(cfg.device.retry_delay_seconds)
            finally:
                if source is not None:
                    source.close()
