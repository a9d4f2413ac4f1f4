"""Reloading the configuration in a running daemon: SIGHUP and the socket's ``reload``.

:class:`ReloadHandling` is mixed into :class:`~edgeasd.agent.runloop.daemon.Daemon`. A
reload never kills the daemon and never half-applies a file: the file is parsed whole
(:func:`edgeasd.config.load_config`, bounded by
:data:`edgeasd.config.reading.MAX_CONFIG_BYTES`), and any failure keeps the running
configuration and says why -- in the log, and to the client of a ``reload`` request
(issue 20: an unhashable key or a 5,000-digit integer killed the daemon within 3 s while the
client was told ``reloading: true``). SIGHUP parses between two blocks; a ``reload`` over
the socket is parsed in its connection's thread and applied by the run loop.
"""

from __future__ import annotations

import logging
from typing import Any

from edgeasd.config import Config, load_config
from edgeasd.config.schema import shown
from edgeasd.errors import ConfigError, EdgeasdError

log = logging.getLogger("edgeasd.agent.runloop.daemon")  # one logger for the daemon's messages

#: Sections a reload cannot change in place: their changes wait for a restart.
RESTART_SECTIONS = ("model", "window", "scoring", "paths")


class ReloadHandling:
    """Configuration reloads of the :class:`Daemon` (a mixin).

    It uses the daemon's ``config``, ``notifier``, ``status``, ``source``, ``_reload`` and
    ``_apply_config``.
    """

    def _read_config(self) -> Config:
        """The configuration file parsed again, or the running one when there is no file.

        Its cost is bounded (:data:`edgeasd.config.reading.MAX_CONFIG_BYTES`: at most
        ~0.13 s of parsing), and every failure is a :class:`ConfigError`: a reload never
        kills the daemon (issue 20: an unhashable key, a 5,000-digit integer did).

        Raises
        ------
        ConfigError
            The file is unreadable or invalid; the message says why.
        """
        old = self.config
        if not old.origin:
            return old
        try:
            return load_config(old.origin, reload=True)
        except EdgeasdError:
            raise
        except Exception as exc:  # a last guard: whatever the file holds, the daemon goes on
            raise ConfigError(
                f"{old.origin}: cannot be loaded ({type(exc).__name__}: {shown(str(exc))})",
                help="run `edgeasd config check` on it",
            ) from None

    def _do_reload(self) -> None:
        """SIGHUP: reload the configuration file; a bad one keeps the running configuration.

        Parsed here, between two blocks, so that the new settings apply from the next
        window on: the size cap bounds the pause (at most ~0.26 s, see
        :data:`edgeasd.config.reading.MAX_CONFIG_BYTES`; a live source's ring holds the
        audio meanwhile). A ``reload`` over the socket is parsed in its connection's thread.
        """
        self._reload.clear()
        self.notifier.reloading()
        try:
            self._apply_reload(self._read_config())
        except EdgeasdError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc.format())
        self.notifier.ready(self.status.line())

    def _apply_reload(self, new: Config) -> dict[str, Any]:
        """Apply a validated configuration (run loop only); what the ``reload`` answer says."""
        old = self.config
        later = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(old, s)]
        for section in later:
            log.warning("reload: changes to '%s' take effect after a restart", section)
        self._apply_config(new)
        if new.source != old.source:
            self.source.reopen()
        log.info("configuration reloaded from %s", old.origin)
        return {"reloaded": True, "origin": old.origin, "restart_needed": later}
