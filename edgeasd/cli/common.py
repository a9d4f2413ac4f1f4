"""What every command shares: ``--config``, the configuration and paths it names, argument types.

Every command takes ``--config PATH`` (default: ``$EDGEASD_CONFIG``, else
``/etc/edgeasd/edgeasd.yaml`` when it exists, else the built-in defaults) so that operator
commands find the same state, runtime and log directories as the daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from edgeasd.config import Config, load_config
from edgeasd.config.paths import SYSTEM_DIRS

#: Configuration read when ``--config`` is not given and ``$EDGEASD_CONFIG`` is unset; being
#: in the system's configuration directory, it selects the service's directories (config/paths.py).
SYSTEM_CONFIG = SYSTEM_DIRS.config_dir / "edgeasd.yaml"


def default_config_path() -> str | None:
    """``$EDGEASD_CONFIG``, else the system configuration if present, else None."""
    env = os.environ.get("EDGEASD_CONFIG")
    if env:
        return env
    return str(SYSTEM_CONFIG) if SYSTEM_CONFIG.is_file() else None


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """Add the common ``--config`` option."""
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="PATH",
        help="configuration file (default: $EDGEASD_CONFIG, else /etc/edgeasd/edgeasd.yaml "
        "if present, else built-in defaults)",
    )


def config_of(args: argparse.Namespace) -> Config:
    """Load the configuration the command line names."""
    return load_config(args.config or default_config_path())


def paths_of(config: Config) -> Any:
    """The directories and file names (:class:`~edgeasd.config.paths.Paths`) of ``config``."""
    from edgeasd.config.paths import resolve_paths

    return resolve_paths(config)


def state_line(state: dict[str, Any]) -> str:
    """``learning: ...``, ``uncalibrated: ...``, ``unreachable: ...`` or ``ready``."""
    name = state.get("state", "?")
    if name == "learning":
        return f"learning: {state.get('learning')}"
    if name == "unreachable":
        return "unreachable: the threshold can never be exceeded, so no alert (fix below)"
    if name == "uncalibrated":
        return (
            f"uncalibrated (no threshold, windows get no verdict): {state.get('threshold_source')}"
        )
    return "ready: windows get a verdict (normal/anomalous)"


def shorten(text: str, width: int) -> str:
    """``text``, or its last ``width - 3`` characters after ``...`` when longer."""
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def hop_seconds(config: Any) -> float:
    """The configured hop: ``window.hop_seconds``, else the window (configured or the model's)."""
    w = config.window
    if w.hop_seconds or w.seconds:
        return float(w.hop_seconds or w.seconds)
    from edgeasd.embedding.models import default_model_path
    from edgeasd.embedding.onnx import peek_model_info  # no onnxruntime: read-only commands

    return float(peek_model_info((config.model.paths or (default_model_path(),))[0]).window_seconds)


@contextlib.contextmanager
def bank_notes_in_words() -> Iterator[None]:
    """Keep the bank's own log warnings off the terminal while a command reads banks.

    Loading a bank logs what it notices (a single recording group, duplicates) for the
    daemon's journal; ``bank summary`` says the same in its own words, and ``bank restore``
    only lists or copies files. Errors still show, and ``-v`` shows everything.
    """
    logger = logging.getLogger("edgeasd.scoring")
    level = logger.level
    if logging.getLogger().level > logging.INFO:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
