"""Where the agent keeps its state, runtime files, logs and caches.

Each directory is, in order of precedence:

1. the key in the configuration's ``paths`` section;
2. the directory systemd passes to the service (``$STATE_DIRECTORY``,
   ``$RUNTIME_DIRECTORY``, ``$LOGS_DIRECTORY``, ``$CACHE_DIRECTORY``; the first entry
   when systemd lists several, separated by ``:``);
3. the system service's directories (``/var/lib/edgeasd``, ``/run/edgeasd``,
   ``/var/log/edgeasd``), when the configuration in use is the system one: a file
   directly in ``/etc/edgeasd`` (the unit's ``ConfigurationDirectory=``, see
   :data:`SYSTEM_DIRS`). This is how an operator's ``edgeasd status``, ``enroll`` and
   ``tail`` find the service: their shell has none of systemd's variables, but they
   read ``/etc/edgeasd/edgeasd.yaml`` (the CLI's default when it exists);
4. an XDG-style per-user default:

=========  =====================================================================
state      ``$XDG_STATE_HOME/edgeasd`` (``~/.local/state/edgeasd``)
runtime    ``$XDG_RUNTIME_DIR/edgeasd``, else ``/tmp/edgeasd-<uid>``
logs       ``<state>/log``
cache      ``$XDG_CACHE_HOME/edgeasd`` (``~/.cache/edgeasd``)
=========  =====================================================================

Rule 3 depends only on which configuration file is used, never on what exists on the
machine: a developer running from a checkout (``--config configs/edgeasd.yaml``, or no
configuration) on a machine where the service is installed keeps the per-user
directories and never touches the service's bank. The cache stays per-user under rule 3
(the service's numba cache is its own, ``NUMBA_CACHE_DIR``).

Files inside them: the bank at ``<state>/bank``, enrolled audio in ``<state>/audio/``,
the control socket ``<runtime>/control.sock``, the status snapshot
``<runtime>/status.json``, the logs ``<logs>/alerts.jsonl`` and ``<logs>/scores.jsonl``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeasd import jitcache
from edgeasd.config import Config
from edgeasd.config.sections import SYSTEM_FOLDERS
from edgeasd.errors import ConfigError
from edgeasd.filemode import shared_writable


@dataclass(frozen=True)
class SystemDirs:
    """The systemd unit's directories (``systemd/edgeasd.service``).

    Attributes
    ----------
    config_dir : pathlib.Path
        ``ConfigurationDirectory=``: a configuration file directly in it is "the system
        configuration", and selects the directories below when neither the configuration
        nor systemd's variables name them.
    state_dir, runtime_dir, log_dir : pathlib.Path
        ``StateDirectory=``, ``RuntimeDirectory=``, ``LogsDirectory=``.
    """

    config_dir: Path = Path("/etc/edgeasd")
    state_dir: Path = Path("/var/lib/edgeasd")
    runtime_dir: Path = Path("/run/edgeasd")
    log_dir: Path = Path("/var/log/edgeasd")

    def holds(self, config_file: str | os.PathLike[str] | None) -> bool:
        """Whether ``config_file`` lies directly in :attr:`config_dir` (symlinks not followed)."""
        if not config_file:
            return False
        parent = Path(os.path.abspath(config_file)).parent
        return parent == Path(os.path.abspath(self.config_dir))


#: The directories of the installed service (``systemd/edgeasd.service``).
SYSTEM_DIRS = SystemDirs()


def _systemd_dir(env: Mapping[str, str], var: str) -> Path | None:
    value = env.get(var, "")
    first = value.split(":")[0]
    return Path(first) if first else None


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


@dataclass(frozen=True)
class Paths:
    """The agent's directories and the files in them.

    Attributes
    ----------
    state_dir, runtime_dir, log_dir, cache_dir : pathlib.Path
        The resolved directories (not necessarily existing; see :meth:`ensure`).
    """

    state_dir: Path
    runtime_dir: Path
    log_dir: Path
    cache_dir: Path

    @property
    def bank(self) -> Path:
        """The reference bank (``<state>/bank``)."""
        return self.state_dir / "bank"

    @property
    def audio_dir(self) -> Path:
        """Audio of enrolled windows, kept for re-embedding (``<state>/audio``)."""
        return self.state_dir / "audio"

    @property
    def episode_file(self) -> Path:
        """Ongoing alert episodes, carried over a restart (``<state>/episode.json``)."""
        return self.state_dir / "episode.json"

    @property
    def control_socket(self) -> Path:
        """The daemon's local control socket (``<runtime>/control.sock``)."""
        return self.runtime_dir / "control.sock"

    @property
    def status_file(self) -> Path:
        """The daemon's status snapshot (``<runtime>/status.json``)."""
        return self.runtime_dir / "status.json"

    @property
    def alerts_log(self) -> Path:
        """Alert, recovery, signal and enrollment events (``<logs>/alerts.jsonl``)."""
        return self.log_dir / "alerts.jsonl"

    @property
    def alert_audio_dir(self) -> Path:
        """Audio of alerted windows with their sidecars (``<logs>/alert-audio``)."""
        return self.log_dir / "alert-audio"

    @property
    def scores_log(self) -> Path:
        """One record per scored window (``<logs>/scores.jsonl``)."""
        return self.log_dir / "scores.jsonl"

    @property
    def numba_cache(self) -> Path:
        """Numba's JIT cache: ``$NUMBA_CACHE_DIR``, which importing edgeasd applies.

        :func:`edgeasd.jitcache.apply` sets it (unless set, as the systemd unit does) to
        ``<cache_dir>/numba`` before numba is imported; ``<cache_dir>/numba`` when unset.
        """
        env = os.environ.get(jitcache.ENV)
        return Path(env) if env else self.cache_dir / "numba"

    def ensure(self, runtime_mode: int = 0o750) -> Paths:
        """Create the state, runtime and log directories if missing.

        Parameters
        ----------
        runtime_mode : int
            Permissions of a newly created runtime directory (the control socket's
            group members must be able to reach it).

        Returns
        -------
        Paths
            ``self``, for chaining.

        Raises
        ------
        ConfigError
            A directory cannot be created or is not writable, is a system folder, or is
            one others may write in (the message names it); the runtime directory
            belongs to another user. Nothing is ever chmod'ed: a folder the agent did not
            create is refused, never changed (issue 20: ``runtime_dir: /tmp`` became 0750).
        """
        for name, path, mode in (
            ("paths.state_dir", self.state_dir, 0o750),
            ("paths.runtime_dir", self.runtime_dir, runtime_mode),
            ("paths.log_dir", self.log_dir, 0o750),
        ):
            if "/" + os.path.normpath(path).lstrip("/") in SYSTEM_FOLDERS:
                raise ConfigError(
                    f"{name} {path} is a system folder",
                    help=f"give the agent a folder of its own, e.g. {path}/edgeasd",
                )
            try:
                path.mkdir(parents=True, exist_ok=True, mode=mode)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create {name} {path}: {exc.strerror or exc}",
                    help=f"set {name} in the configuration to a writable folder, "
                    "or run as the user that owns it",
                ) from None
            if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError(
                    f"{name} {path} is not a writable directory",
                    help=f"fix its permissions or set {name} to another folder",
                )
            _refuse_shared(name, path)
        st = self.runtime_dir.stat()
        if st.st_uid != os.getuid():
            # e.g. the /tmp fallback prepared by another user: the socket would be theirs.
            raise ConfigError(
                f"paths.runtime_dir {self.runtime_dir} belongs to another user (uid {st.st_uid})",
                help="set paths.runtime_dir (or $XDG_RUNTIME_DIR) to a folder of your own",
            )
        return self


def _refuse_shared(name: str, path: Path) -> None:
    """Refuse a folder that others may write in: they could plant links under our names."""
    who = shared_writable(path)
    if who is not None:
        raise ConfigError(
            f"{name} {path} is writable by {who}: refusing to use it (others could plant "
            "links or files under the agent's names)",
            help=f"make it private (`chmod go-w {path}`), or set {name} to a folder of the "
            "agent's own",
        )


def runtime_owner(runtime_dir: Path) -> int | None:
    """The uid a daemon serving ``runtime_dir`` must run as; None if it does not exist.

    The client's side of :meth:`Paths.ensure` (issue 20: a root ``enroll`` sent its open
    files to whoever had made ``/tmp/edgeasd-0``): the folder must be one the daemon would
    accept -- nobody else may write in it -- and its owner must be trusted: this user,
    root, or an owner that only root can have chosen (the folder sits in one that only
    root may write in, e.g. ``/run/edgeasd`` made by systemd for the service user).

    Raises
    ------
    ConfigError
        The folder is writable by others, or belongs to another user who could have made
        it themselves (its parent is writable by others, as ``/tmp`` is).
    """
    try:
        st = os.stat(runtime_dir)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"cannot check paths.runtime_dir {runtime_dir}: {exc.strerror}") from None
    _refuse_shared("paths.runtime_dir", runtime_dir)
    if st.st_uid in (0, os.getuid()):
        return st.st_uid
    parent = os.stat(os.path.dirname(os.path.realpath(runtime_dir)) or "/")
    if parent.st_uid == 0 and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return st.st_uid  # placed by root for the service user
    raise ConfigError(
        f"paths.runtime_dir {runtime_dir} belongs to another user (uid {st.st_uid}) who "
        "could have made it: refusing to talk to a daemon there",
        help="remove it if it is not the agent's (`ls -ld` shows who made it), and set "
        "paths.runtime_dir (or $XDG_RUNTIME_DIR) to a folder of your own",
    )


def resolve_paths(
    config: Config | None = None,
    env: Mapping[str, str] | None = None,
    system: SystemDirs = SYSTEM_DIRS,
) -> Paths:
    """Resolve the agent's directories from a configuration and the environment.

    Parameters
    ----------
    config : Config, optional
        Its ``paths`` section overrides everything else (default: built-in defaults). When
        it was loaded from a file in ``system.config_dir``, directories it leaves null and
        systemd does not pass are the service's (``system``).
    env : mapping, optional
        The environment to read (default: ``os.environ``).
    system : SystemDirs
        The service's directories (a parameter for tests; nothing is read from them).

    Returns
    -------
    Paths
        Absolute directories; nothing is created.
    """
    env = os.environ if env is None else env
    config = config or Config()
    cfg = config.paths
    service = system.holds(config.origin)
    home = _home(env)
    xdg_state = Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")
    if cfg.state_dir:
        state = Path(cfg.state_dir)
    else:
        state = _systemd_dir(env, "STATE_DIRECTORY") or (
            system.state_dir if service else xdg_state / "edgeasd"
        )
    if cfg.runtime_dir:
        runtime = Path(cfg.runtime_dir)
    elif _systemd_dir(env, "RUNTIME_DIRECTORY"):
        runtime = _systemd_dir(env, "RUNTIME_DIRECTORY")
    elif service:
        runtime = system.runtime_dir
    elif env.get("XDG_RUNTIME_DIR"):
        runtime = Path(env["XDG_RUNTIME_DIR"]) / "edgeasd"
    else:
        runtime = Path("/tmp") / f"edgeasd-{os.getuid()}"
    if cfg.log_dir:
        logs = Path(cfg.log_dir)
    else:
        logs = _systemd_dir(env, "LOGS_DIRECTORY") or (system.log_dir if service else state / "log")
    cache = jitcache.default_cache_dir(env)
    return Paths(
        state_dir=state.absolute(),
        runtime_dir=runtime.absolute(),
        log_dir=logs.absolute(),
        cache_dir=cache.absolute(),
    )
