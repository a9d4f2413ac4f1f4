"""systemd integration without a dependency: ``sd_notify`` and journal log priorities.

When systemd starts a ``Type=notify`` service it sets ``$NOTIFY_SOCKET`` to an
``AF_UNIX`` datagram socket (a path, or an abstract name written with a leading
``@``). The service sends newline-separated ``KEY=VALUE`` assignments to it:
``READY=1``, ``WATCHDOG=1``, ``STATUS=...``, ``STOPPING=1``, ``RELOADING=1``. Outside
systemd the variable is unset and every call is a no-op returning ``False``.

A send failure is logged and reported as ``False``: notification must never stop the
agent (systemd's watchdog notices if it stays silent).

Under systemd, stderr goes to the journal: :class:`JournalFormatter` prefixes each log
line with its syslog priority so journald files alerts as warnings, and
:func:`under_journal` tells whether that is the case.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes:
    """The socket address for ``$NOTIFY_SOCKET`` (``@name`` = abstract namespace)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """A connection to systemd's notification socket.

    Parameters
    ----------
    env : mapping, optional
        Where to read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``
        (default: ``os.environ``, read once now).

    Attributes
    ----------
    enabled : bool
        Whether ``$NOTIFY_SOCKET`` is set (otherwise every call does nothing).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._socket_path = env.get("NOTIFY_SOCKET") or None
        self.enabled = self._socket_path is not None
        self._sock: socket.socket | None = None
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")

    def send(self, **fields: str | int | float) -> bool:
        """Send ``KEY=VALUE`` assignments (keys upper-cased) in one datagram.

        Returns
        -------
        bool
            Whether the message was sent (``False`` when not under systemd or on error).
        """
        if not self.enabled or not fields:
            return False
        message = "\n".join(f"{k.upper()}={_one_line(v)}" for k, v in fields.items())
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                try:
                    sock.connect(_address(self._socket_path))
                except OSError:
                    sock.close()
                    raise
                self._sock = sock
            self._sock.sendall(message.encode("utf-8"))
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self._socket_path, exc)
            self.close()
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (and optionally ``STATUS=``): start-up is complete."""
        return self.send(READY=1, **({"STATUS": status} if status is not None else {}))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive; send only while it really works."""
        return self.send(WATCHDOG=1)

    def status(self, text: str) -> bool:
        """``STATUS=<text>``: one line shown by ``systemctl status``."""
        return self.send(STATUS=text)

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.send(STOPPING=1)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC``: a configuration reload has begun.

        Send :meth:`ready` when the reload is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=usec)

    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects ``WATCHDOG=1``, or None if no watchdog.

        ``$WATCHDOG_USEC`` applies only when ``$WATCHDOG_PID`` is unset or this process.
        Ping at half this interval, as sd_watchdog_enabled(3) recommends.
        """
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1e6 if usec > 0 else None

    def close(self) -> None:
        """Close the socket (a later call reconnects)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(value: str | int | float) -> str:
    """A value without newlines (a newline would start a new assignment)."""
    return " ".join(str(value).splitlines())


def notify(**fields: str | int | float) -> bool:
    """Send one notification with a throw-away :class:`Notifier` (see :meth:`Notifier.send`)."""
    with Notifier() as notifier:
        return notifier.send(**fields)


#: sd-daemon(3) priority prefixes (syslog levels) per logging level.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def under_journal(env: Mapping[str, str] | None = None) -> bool:
    """Whether stderr is connected to systemd's journal (``$JOURNAL_STREAM`` matches it).

    Parameters
    ----------
    env : mapping, optional
        Default ``os.environ``.
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(v) for v in value.split(":"))
        st = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class JournalFormatter(logging.Formatter):
    """Log lines for the journal: an ``<N>`` priority prefix and no timestamp of our own.

    journald reads the prefix (sd-daemon(3)), so ``journalctl -p warning -u edgeasd``
    shows alerts, and adds its own timestamp.
    """

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record with its syslog priority prefixed to every line."""
        prio = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())
