"""Directory resolution: config > systemd variables > system config's dirs > XDG fallbacks."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from edgeasd.config import config_from_dict, load_config
from edgeasd.config.paths import SYSTEM_DIRS, SystemDirs, resolve_paths
from edgeasd.errors import ConfigError


def test_xdg_fallbacks():
    env = {"HOME": "/home/op"}
    p = resolve_paths(None, env)
    assert p.state_dir == Path("/home/op/.local/state/edgeasd")
    assert p.runtime_dir == Path(f"/tmp/edgeasd-{os.getuid()}")
    assert p.log_dir == p.state_dir / "log"
    assert p.cache_dir == Path("/home/op/.cache/edgeasd")
    env.update(XDG_STATE_HOME="/x/state", XDG_RUNTIME_DIR="/run/user/7", XDG_CACHE_HOME="/x/c")
    p = resolve_paths(None, env)
    assert (p.state_dir, p.runtime_dir, p.cache_dir) == (
        Path("/x/state/edgeasd"),
        Path("/run/user/7/edgeasd"),
        Path("/x/c/edgeasd"),
    )


def test_systemd_directories_win_over_xdg():
    env = {
        "HOME": "/home/op",
        "XDG_RUNTIME_DIR": "/run/user/7",
        "STATE_DIRECTORY": "/var/lib/edgeasd:/var/lib/other",
        "RUNTIME_DIRECTORY": "/run/edgeasd",
        "LOGS_DIRECTORY": "/var/log/edgeasd",
        "CACHE_DIRECTORY": "/var/cache/edgeasd",
    }
    p = resolve_paths(None, env)
    assert p.state_dir == Path("/var/lib/edgeasd")
    assert p.runtime_dir == Path("/run/edgeasd")
    assert p.log_dir == Path("/var/log/edgeasd")
    assert p.cache_dir == Path("/var/cache/edgeasd")
    assert p.bank == Path("/var/lib/edgeasd/bank")
    assert p.audio_dir == Path("/var/lib/edgeasd/audio")
    assert p.control_socket == Path("/run/edgeasd/control.sock")
    assert p.status_file == Path("/run/edgeasd/status.json")
    assert p.alerts_log == Path("/var/log/edgeasd/alerts.jsonl")
    assert p.scores_log == Path("/var/log/edgeasd/scores.jsonl")


def test_config_wins_over_everything(tmp_path):
    cfg = config_from_dict(
        {"paths": {"state_dir": "s", "runtime_dir": "/r", "log_dir": None}},
        origin=str(tmp_path / "c.yaml"),
    )
    p = resolve_paths(cfg, {"STATE_DIRECTORY": "/var/lib/edgeasd", "LOGS_DIRECTORY": "/l"})
    assert p.state_dir == tmp_path / "s" and p.runtime_dir == Path("/r")
    assert p.log_dir == Path("/l")


def test_numba_cache_follows_the_environment(monkeypatch):
    p = resolve_paths(None, {"HOME": "/h"})
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert p.numba_cache == Path("/h/.cache/edgeasd/numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/var/cache/edgeasd/numba")
    assert p.numba_cache == Path("/var/cache/edgeasd/numba")


def test_ensure_creates_directories(tmp_path):
    cfg = config_from_dict(
        {"paths": {"state_dir": str(tmp_path / "s"), "runtime_dir": str(tmp_path / "r")}}
    )
    p = resolve_paths(cfg, {"HOME": str(tmp_path)}).ensure()
    assert p.state_dir.is_dir() and p.runtime_dir.is_dir() and p.log_dir.is_dir()
    assert p.runtime_dir.stat().st_mode & 0o777 == 0o750 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


#: The unprivileged user root's tests switch to (Debian's ``nobody``/``nogroup``).
NOBODY = 65534


def _unwritable_state_dir_error(base: Path) -> str:
    """Run ``ensure()`` on a state dir inside a read-only folder; '' when it was refused."""
    cfg = config_from_dict({"paths": {"state_dir": str(base / "locked" / "state")}})
    try:
        resolve_paths(cfg).ensure()
    except ConfigError as exc:
        return "" if "paths.state_dir" in str(exc) else f"wrong error: {exc}"
    return "ensure() accepted an unwritable state dir"


def test_ensure_names_an_unwritable_directory():
    """As an unprivileged user: as root (CI) the check runs in a child switched to nobody."""
    base = Path(tempfile.mkdtemp(prefix="edgeasd-perm-"))
    try:
        base.chmod(0o755)
        (base / "locked").mkdir(mode=0o555)  # readable, not writable, by anyone but root
        if os.getuid() != 0:
            (base / "locked").chmod(0o500)
            assert _unwritable_state_dir_error(base) == ""
            return
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop root for good, report through the pipe
            status = 1
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                message = _unwritable_state_dir_error(base)
                os.write(write, message.encode() or b"ok")
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        with os.fdopen(read, "rb") as fh:
            message = fh.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0 and message == "ok", message
    finally:
        if (base / "locked").exists():
            (base / "locked").chmod(0o755)
        shutil.rmtree(base)


def test_ensure_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    cfg = config_from_dict({"paths": {"log_dir": str(tmp_path / "file")}})
    with pytest.raises(ConfigError, match=r"paths\.log_dir"):
        resolve_paths(cfg).ensure()


def test_ensure_refuses_a_runtime_dir_of_another_user(tmp_path, monkeypatch):
    cfg = config_from_dict({"paths": {"runtime_dir": str(tmp_path / "r")}})
    p = resolve_paths(cfg)
    p.runtime_dir.mkdir()
    monkeypatch.setattr("edgeasd.config.paths.os.getuid", lambda: os.stat(tmp_path).st_uid + 4242)
    with pytest.raises(ConfigError, match="belongs to another user"):
        p.ensure()


def _system(root: Path) -> SystemDirs:
    """The service's directories under a test root (nothing real under /etc, /var, /run)."""
    return SystemDirs(
        config_dir=root / "etc" / "edgeasd",
        state_dir=root / "var" / "lib" / "edgeasd",
        runtime_dir=root / "run" / "edgeasd",
        log_dir=root / "var" / "log" / "edgeasd",
    )


def _config_in(folder: Path, text: str = "paths: {}\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "edgeasd.yaml").write_text(text)
    return load_config(folder / "edgeasd.yaml")


def test_the_system_config_selects_the_service_directories(tmp_path):
    system = _system(tmp_path)
    env = {"HOME": "/home/op", "XDG_RUNTIME_DIR": "/run/user/1000"}  # an operator's shell
    p = resolve_paths(_config_in(system.config_dir), env, system)
    assert p.state_dir == system.state_dir and p.bank == system.state_dir / "bank"
    assert p.runtime_dir == system.runtime_dir
    assert p.control_socket == system.runtime_dir / "control.sock"
    assert p.log_dir == system.log_dir
    assert p.cache_dir == Path("/home/op/.cache/edgeasd")  # the operator's own cache
    assert SYSTEM_DIRS.holds("/etc/edgeasd/edgeasd.yaml")
    assert SYSTEM_DIRS.state_dir == Path("/var/lib/edgeasd")


def test_the_system_config_yields_to_the_config_and_to_systemd(tmp_path):
    system = _system(tmp_path)
    cfg = _config_in(system.config_dir, "paths: {log_dir: /srv/logs}\n")
    env = {"HOME": "/h", "STATE_DIRECTORY": "/var/lib/other", "RUNTIME_DIRECTORY": "/run/o"}
    p = resolve_paths(cfg, env, system)
    assert (p.state_dir, p.runtime_dir, p.log_dir) == (
        Path("/var/lib/other"),
        Path("/run/o"),
        Path("/srv/logs"),
    )


def test_a_checkout_config_keeps_per_user_directories(tmp_path):
    system = _system(tmp_path)
    system.state_dir.mkdir(parents=True)  # the service is installed on this machine
    env = {"HOME": "/home/dev", "XDG_RUNTIME_DIR": "/run/user/1000"}
    for cfg in (
        _config_in(tmp_path / "checkout" / "configs"),
        _config_in(system.config_dir / "sub"),  # only files directly in the folder count
        None,
    ):
        p = resolve_paths(cfg, env, system)
        assert p.state_dir == Path("/home/dev/.local/state/edgeasd")
        assert p.runtime_dir == Path("/run/user/1000/edgeasd")
        assert p.log_dir == p.state_dir / "log"


def test_paths_is_the_only_owner_of_the_file_names():
    """The bank, the kept audio and the control socket are named only in ``config/paths.py``:
    everything else takes them from a :class:`Paths` (no second definition to drift)."""
    import re

    from edgeasd.agent.control import server as control
    from edgeasd.agent.enrollment import enroll

    assert not hasattr(enroll, "bank_path")
    assert not hasattr(control, "socket_path") and not hasattr(control, "SOCKET_NAME")
    package = Path(__file__).resolve().parents[2] / "edgeasd"
    spelled = re.compile(r'"control\.sock"|/ "bank"|/ "audio"')
    owners = sorted(
        str(f.relative_to(package)) for f in package.rglob("*.py") if spelled.search(f.read_text())
    )
    assert owners == ["config/paths.py"]
