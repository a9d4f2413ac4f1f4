"""The systemd unit, written with the ``ExecStart=`` of the edgeasd actually installed.

The shipped unit (``systemd/edgeasd.service``) names ``/usr/local/bin/edgeasd``, where a
root ``pip install .`` puts the command on Debian. Installed anywhere else (a virtual
environment, ``/usr/bin``, ``pipx``), that path does not exist and ``systemd-analyze
verify`` fails. :func:`render_unit` replaces it by the running installation's command:

1. ``sys.argv[0]`` when the running program is the ``edgeasd`` console script;
2. else the ``edgeasd`` script beside ``sys.executable`` (a virtual environment's
   ``bin/``), when the process was started as ``python -m edgeasd``;
3. else ``<sys.executable> -m edgeasd``, which runs this very installation.

The unit text comes from the checkout (``systemd/`` beside the package) or, for a wheel
install, from ``<prefix>/share/edgeasd/systemd/`` (``data-files`` in ``pyproject.toml``).
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from pathlib import Path

from edgeasd.atomic import write_bytes_atomic
from edgeasd.errors import ConfigError, InputError
from edgeasd.filemode import WORLD_READABLE

UNIT_NAME = "edgeasd.service"
#: Where ``systemctl`` looks for units installed by the administrator.
DEFAULT_DEST = Path("/etc/systemd/system")
#: Folders the unit hides from the service (``ProtectHome=yes``, ``PrivateTmp=yes``):
#: an ExecStart there exists for ``systemd-analyze verify`` but cannot start.
HIDDEN = (Path("/home"), Path("/root"), Path("/run/user"), Path("/tmp"), Path("/var/tmp"))
_EXEC_START = re.compile(r"^ExecStart=(\S+)", re.MULTILINE)


def unit_template() -> Path:
    """The shipped unit file: the checkout's, else the one installed as data.

    Raises
    ------
    ConfigError
        Neither exists (a broken install).
    """
    package = Path(__file__).resolve().parents[2]  # edgeasd/ (this is agent/service/unit.py)
    candidates = [package.parent / "systemd" / UNIT_NAME]
    for scheme in {sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")}:
        data = sysconfig.get_path("data", scheme)
        candidates.append(Path(data) / "share" / "edgeasd" / "systemd" / UNIT_NAME)
    candidates.append(Path(sys.prefix) / "share" / "edgeasd" / "systemd" / UNIT_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(
        f"cannot find the shipped {UNIT_NAME} (looked in {', '.join(map(str, candidates))})",
        help="reinstall edgeasd (python3 -m pip install .), or copy systemd/edgeasd.service "
        "from the source tree and edit its ExecStart= by hand",
    )


def installed_command(argv0: str | None = None, executable: str | None = None) -> list[str]:
    """The command that runs this installation of edgeasd (rules 1-3 of the module doc).

    Parameters
    ----------
    argv0, executable : str, optional
        ``sys.argv[0]`` and ``sys.executable`` (parameters for tests).

    Returns
    -------
    list of str
        Absolute program path, then arguments (``["/opt/venv/bin/edgeasd"]`` or
        ``["/usr/bin/python3", "-m", "edgeasd"]``).
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if Path(argv0).name == "edgeasd" and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    script = Path(executable).parent / "edgeasd"
    if executable and script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [os.path.abspath(executable), "-m", "edgeasd"]


def systemd_quote(arg: str, program: bool = False) -> str:
    """Quote one command-line word for ``ExecStart=`` (specifiers, variables, spaces).

    ``%`` starts a specifier and is doubled. ``$`` starts a variable in the arguments
    and is doubled there; in the program path systemd takes it literally (measured
    with ``systemd-analyze verify``, systemd 252). Words with white space, quotes or
    backslashes are double-quoted, with C-style escapes.
    """
    word = arg.replace("%", "%%")
    if not program:
        word = word.replace("$", "$$")
    if word and not re.search(r"[\s\"'\\;]", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(template: str, command: list[str]) -> str:
    """The unit text with ``ExecStart=``'s program replaced by ``command``.

    Parameters
    ----------
    template : str
        The shipped unit (its ``ExecStart=`` starts with the program path).
    command : list of str
        Program and leading arguments (:func:`installed_command`).

    Raises
    ------
    InputError
        The template has no single ``ExecStart=`` line.
    """
    if len(_EXEC_START.findall(template)) != 1:
        raise InputError(f"the unit template needs exactly one ExecStart= line: {template!r:.80}")
    exec_start = " ".join(systemd_quote(w, program=i == 0) for i, w in enumerate(command))
    return _EXEC_START.sub(lambda _m: f"ExecStart={exec_start}", template, count=1)


def hidden_from_service(program: str) -> Path | None:
    """The folder of :data:`HIDDEN` that hides ``program`` from the service, if any."""
    path = Path(program).absolute()
    return next((h for h in HIDDEN if path == h or h in path.parents), None)


def install_unit(dest: str | os.PathLike[str], command: list[str] | None = None) -> Path:
    """Write the rendered unit to ``<dest>/edgeasd.service`` atomically (mode 0644).

    Parameters
    ----------
    dest : path-like
        The folder (``/etc/systemd/system`` for the system service). Created if missing.
    command : list of str, optional
        The ExecStart program and leading arguments (default: :func:`installed_command`).

    Returns
    -------
    pathlib.Path
        The unit file written.

    Raises
    ------
    ConfigError
        The folder cannot be created or written (the message says why).
    """
    text = render_unit(unit_template().read_text(), command or installed_command())
    target = Path(dest) / UNIT_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # units are public, whatever the umask
        write_bytes_atomic(target, text.encode(), WORLD_READABLE, fsync=False, exact_mode=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target}: {exc.strerror or exc}",
            help="run as root for /etc/systemd/system, or pass --dest to a writable folder",
        ) from None
    return target
