"""Where numba keeps its JIT cache: applied when :mod:`edgeasd` is imported.

The scoring kernels are compiled with ``@njit(cache=True)``. Without ``NUMBA_CACHE_DIR``
numba writes its ``*.nbi``/``*.nbc`` files into the ``__pycache__`` folder next to the
source, that is, into the installed package. Files pip did not install are not removed
by ``pip uninstall``, so after ``pip install .`` and ``pip install -e .`` in the same
environment the left-over ``edgeasd/`` folder in ``site-packages`` shadows the editable
install as an empty namespace package (``cannot import name '__version__' from 'edgeasd'
(unknown location)``).

So ``edgeasd/__init__.py`` calls :func:`apply` before anything can import numba, for
every entry point (``edgeasd``, ``python -m edgeasd``, ``import edgeasd.scoring``):

1. ``$NUMBA_CACHE_DIR`` when set (the systemd unit sets ``%C/edgeasd/numba``);
2. else ``<cache>/numba``, with ``<cache>`` the first entry of ``$CACHE_DIRECTORY``
   (systemd's ``CacheDirectory=``), else ``$XDG_CACHE_HOME/edgeasd``
   (``~/.cache/edgeasd``);
3. when that folder cannot be created (a home without write access), a per-user folder
   in the temporary directory, so numba never falls back to the package folder.

This module imports nothing but the standard library: it runs on every import of
``edgeasd``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

ENV = "NUMBA_CACHE_DIR"


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """edgeasd's cache folder: ``$CACHE_DIRECTORY`` (first entry), else the XDG one.

    Parameters
    ----------
    env : mapping
        The environment to read.
    """
    systemd = env.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    home = env.get("HOME")
    xdg = env.get("XDG_CACHE_HOME") or str(Path(home or Path.home()) / ".cache")
    return Path(xdg) / "edgeasd"


def _creatable(path: Path) -> bool:
    """Whether ``path`` exists as a writable folder or could be created (no side effect)."""
    for folder in (path, *path.parents):
        if folder.exists():
            return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    return False


def numba_cache_dir(env: Mapping[str, str]) -> Path:
    """The folder numba's JIT cache goes to (rules 1-3 of the module docstring)."""
    if env.get(ENV):
        return Path(env[ENV])
    path = (default_cache_dir(env) / "numba").absolute()
    if _creatable(path):
        return path
    return Path(tempfile.gettempdir()) / f"edgeasd-{os.getuid()}-numba"


def apply(env: MutableMapping[str, str] | None = None) -> Path:
    """Set ``$NUMBA_CACHE_DIR`` (unless set) and make an already imported numba use it.

    Parameters
    ----------
    env : mutable mapping, optional
        The environment to update (default: ``os.environ``, inherited by subprocesses).

    Returns
    -------
    pathlib.Path
        The cache folder in effect (created by numba on the first compilation).
    """
    env = os.environ if env is None else env
    path = numba_cache_dir(env)
    env[ENV] = str(path)
    config = sys.modules.get("numba.core.config")
    if config is not None and env is os.environ:
        # numba read its environment at import; re-read it before any kernel is decorated.
        config.reload_config()
    return path
