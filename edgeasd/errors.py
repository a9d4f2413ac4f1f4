"""Typed exceptions that carry a help text for the operator.

Every error that an operator can cause (a bad config, a missing device, a corrupt
bank, a bad audio file) is raised as a subclass of :class:`EdgeasdError`. The CLI
prints ``error: <message>`` followed by the help text and exits non-zero; library
users can catch the specific class.

Errors caused by bad *arguments* to library calls (wrong dimension, NaN values)
are :class:`InputError`, which is also a :class:`ValueError`, so that the
scikit-learn style API raises what Python users expect.
"""

from __future__ import annotations


class EdgeasdError(Exception):
    """Base class of all edgeasd errors.

    Parameters
    ----------
    message : str
        What is wrong, naming the offending file, key, device or value.
    help : str, optional
        What the operator should do about it.
    """

    exit_code = 2

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help

    def __str__(self) -> str:
        return self.message

    def format(self) -> str:
        """The message and the help text, as the CLI prints them."""
        text = f"error: {self.message}"
        if self.help:
            text += "\n  hint: " + self.help.replace("\n", "\n        ")
        return text


class InputError(EdgeasdError, ValueError):
    """Bad data passed to a library call (wrong shape, NaN, empty batch...)."""


class ConfigError(EdgeasdError):
    """The configuration file is missing, unreadable or invalid."""


class AudioFileError(EdgeasdError):
    """An audio file cannot be read or has unusable content."""


class DeviceError(EdgeasdError):
    """An audio capture device is missing, busy or failed."""

    exit_code = 3


class ModelError(EdgeasdError):
    """An embedding model cannot be loaded or does not fit the agent or bank."""


class EmbeddingError(ModelError):
    """The model returned NaN or infinite values for a window (the window, not the file)."""


class BankError(EdgeasdError):
    """The reference bank cannot be used as asked (empty, wrong model...)."""


class BankCorruptError(BankError):
    """A bank file on disk is truncated, corrupt or of an unknown version."""


class BankLockedError(BankError):
    """Another process holds the bank's write lock."""


class StatusFileError(EdgeasdError):
    """The daemon's ``status.json`` is unreadable or corrupt."""


class ControlError(EdgeasdError):
    """The daemon's control socket cannot be reached or refused a request."""
