"""The shipped systemd unit: verify, hardening exposure, required settings."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeasd.agent.service import unit as service

REPO = Path(__file__).resolve().parents[3]
UNIT = REPO / "systemd" / "edgeasd.service"
#: This test run's own installation may lie where the unit hides programs (a checkout under
#: /tmp or /home, as a CI clone may be): the tests of what the unit holds then pass --force.
#: The refusal itself is tested with explicit paths below.
HERE = service.installed_command(str(REPO / "edgeasd" / "__main__.py"), sys.executable)[0]
FORCE_HERE = ("--force",) if service.hidden_from_service(HERE) else ()
SYSUSERS = REPO / "systemd" / "edgeasd.sysusers.conf"
#: The exposure `systemd-analyze security --offline=yes` reported for the shipped unit
#: (systemd 252); a test fails if the unit gets less hardened.
EXPOSURE = 0.6

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _install(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``edgeasd service install --dest DEST ARGS`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "edgeasd", "service", "install", "--dest", str(dest), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _testable_copy(tmp_path: Path) -> Path:
    """The unit as `edgeasd service install` writes it for this installation."""
    result = _install(tmp_path, *FORCE_HERE)
    assert result.returncode == 0, result.stderr
    return tmp_path / "edgeasd.service"


def test_required_settings():
    s = _settings()
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "User": "edgeasd",
        "SupplementaryGroups": "audio",
        "StateDirectory": "edgeasd",
        "LogsDirectory": "edgeasd",
        "CacheDirectory": "edgeasd",
        "RuntimeDirectory": "edgeasd",
        "ConfigurationDirectory": "edgeasd",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "DevicePolicy": "closed",
        "DeviceAllow": "char-alsa rw",
        "RestrictAddressFamilies": "AF_UNIX",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert s["ExecStart"] == ["/usr/local/bin/edgeasd run --config /etc/edgeasd/edgeasd.yaml"]
    assert "NUMBA_CACHE_DIR=%C/edgeasd/numba" in s["Environment"]
    assert s["UMask"] == ["0027"]  # files 0640, folders 0750 (edgeasd/filemode.py)
    assert "@system-service" in s["SystemCallFilter"]
    assert re.fullmatch(r"\d+s", s["WatchdogSec"][0])
    # numba's JIT needs W+X memory; PrivateDevices hides /dev/snd
    assert "MemoryDenyWriteExecute" not in s and "PrivateDevices" not in s


def test_sysusers_declares_the_static_user():
    rows = [ln.split() for ln in SYSUSERS.read_text().splitlines() if ln and ln[0] != "#"]
    assert ["u", "edgeasd", "-"] == rows[0][:3]
    assert ["m", "edgeasd", "audio"] in rows


@needs_analyze
def test_systemd_analyze_verify(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(_testable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "edgeasd.service" not in result.stderr, result.stderr


@needs_analyze
def test_security_exposure(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_testable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= EXPOSURE


def test_service_install_writes_the_real_exec_start(tmp_path):
    unit = _testable_copy(tmp_path)
    text = unit.read_text()
    exec_start = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    assert len(exec_start) == 1
    program, *rest = exec_start[0].removeprefix("ExecStart=").split()
    assert Path(program).is_absolute() and os.access(program, os.X_OK), program
    assert " ".join(rest).endswith("run --config /etc/edgeasd/edgeasd.yaml")
    # Everything else is the shipped unit, byte for byte.
    others = [ln for ln in text.splitlines() if not ln.startswith("ExecStart=")]
    assert others == [ln for ln in UNIT.read_text().splitlines() if not ln.startswith("ExecStart=")]
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    dry = _install(tmp_path / "unused", "--dry-run", *FORCE_HERE)
    assert dry.returncode == 0 and dry.stdout == text
    assert not (tmp_path / "unused").exists()


def test_installed_command_follows_the_running_installation(tmp_path):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python, script = bin_dir / "python3", bin_dir / "edgeasd"
    for f in (python, script):
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    # 1. the console script itself
    assert service.installed_command(str(script), "/usr/bin/python3") == [str(script)]
    # 2. python -m edgeasd from an environment that has the script
    main = str(REPO / "edgeasd" / "__main__.py")
    assert service.installed_command(main, str(python)) == [str(script)]
    # 3. no script beside the interpreter: run this installation as a module
    script.unlink()
    assert service.installed_command(main, str(python)) == [str(python), "-m", "edgeasd"]


@needs_analyze
def test_a_path_with_spaces_and_specifiers_verifies(tmp_path):
    folder = tmp_path / "my venv %i $HOME" / "bin"
    folder.mkdir(parents=True)
    exe = folder / "edgeasd"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    # tmp_path lies under /tmp, which the unit hides: --force writes it anyway
    result = _install(tmp_path / "unit", "--exec", shlex.quote(str(exe)), "--force")
    assert result.returncode == 0, result.stderr
    line = next(
        ln
        for ln in (tmp_path / "unit" / "edgeasd.service").read_text().splitlines()
        if ln.startswith("ExecStart=")
    )
    assert "%%i $HOME" in line
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "unit" / "edgeasd.service")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert verify.returncode == 0, verify.stderr


@pytest.mark.parametrize("extra", [(), ("--dry-run",)])
def test_install_refuses_a_program_the_unit_hides(tmp_path, extra):
    result = _install(tmp_path, "--exec", "/home/op/venv/bin/edgeasd", *extra)
    assert result.returncode == 2, result.stdout
    assert "error:" in result.stderr and "under /home" in result.stderr
    assert "ProtectHome" in result.stderr and "--force" in result.stderr
    assert "/opt/edgeasd" in result.stderr  # where to install instead
    assert not (tmp_path / "edgeasd.service").exists()
    assert "next" not in result.stdout and "ExecStart" not in result.stdout


def test_install_with_force_writes_a_hidden_program_with_a_warning(tmp_path):
    result = _install(tmp_path, "--exec", "/tmp/venv/bin/edgeasd", "--force")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "under /tmp" in result.stderr
    assert "ExecStart=/tmp/venv/bin/edgeasd run" in (tmp_path / "edgeasd.service").read_text()


def test_install_names_the_steps_left_with_real_paths(tmp_path):
    result = _install(tmp_path, *FORCE_HERE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("next, as root")
    steps = [ln.strip() for ln in lines[2:]]
    has_user = True
    try:
        pwd.getpwnam("edgeasd")
    except KeyError:
        has_user = False
    sysusers = [s for s in steps if "systemd-sysusers" in s]
    assert bool(sysusers) != has_user
    if sysusers:  # the printed file exists: the command works as printed
        assert Path(shlex.split(sysusers[0])[2]) == SYSUSERS
    config = [s for s in steps if s.startswith("install -Dm644") and "edgeasd.yaml" in s]
    assert bool(config) != Path("/etc/edgeasd/edgeasd.yaml").is_file()
    if config:
        assert Path(shlex.split(config[0])[2]) == REPO / "configs" / "edgeasd.yaml"
    assert "edgeasd config check --config /etc/edgeasd/edgeasd.yaml" in steps
    assert steps[-1].startswith("systemctl daemon-reload && systemctl enable --now edgeasd")


def test_next_steps_after_an_upgrade_leave_out_the_user_and_the_config():
    from edgeasd.cli.service import next_steps

    steps = next_steps(UNIT, has_user=True, has_config=True)
    assert not any("sysusers" in s or "install -Dm644" in s for s in steps)
    assert steps[0] == "edgeasd config check --config /etc/edgeasd/edgeasd.yaml"


def test_an_unwritable_destination_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _install(blocker / "sub", *FORCE_HERE)
    assert result.returncode != 0
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
