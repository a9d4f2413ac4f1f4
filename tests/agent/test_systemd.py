"""The shipped systemd unit: verify, hardening exposure, required settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edgeasd.service"
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


def _testable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify needs one)."""
    exe = shutil.which("edgeasd") or sys.executable
    text = UNIT.read_text().replace("/usr/local/bin/edgeasd", exe)
    copy = tmp_path / "edgeasd.service"
    copy.write_text(text)
    return copy


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
