"""The systemd drop-in examples for MQTT credentials and metrics: they verify with the
shipped unit, and name the credential the agent reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeasd.fleet.mqtt_queue import DiskQueue  # noqa: F401  (the package imports without paho)

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edgeasd.service"
DROPINS = sorted((REPO / "systemd" / "edgeasd.service.d").glob("*.conf.example"))


def test_dropins_exist_and_name_the_credential() -> None:
    names = {p.name for p in DROPINS}
    assert {"mqtt-credentials.conf.example", "metrics.conf.example"} <= names
    text = (REPO / "systemd" / "edgeasd.service.d" / "mqtt-credentials.conf.example").read_text()
    pytest.importorskip("paho.mqtt.client")
    from edgeasd.fleet.mqtt import CREDENTIAL

    assert f"\nLoadCredential={CREDENTIAL}:" in text
    assert "PrivateNetwork=no" in text  # the base unit has no network


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_with_the_dropins_verifies(tmp_path) -> None:
    exe = shutil.which("edgeasd") or sys.executable
    unit = tmp_path / "edgeasd.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/edgeasd", exe))
    d = tmp_path / "edgeasd.service.d"
    d.mkdir()
    for p in DROPINS:
        text = p.read_text()
        if p.name.startswith("metrics"):  # uncomment the optional lines too
            text = text.replace("\n#PrivateNetwork", "\nPrivateNetwork")
            text = text.replace("\n#Restrict", "\nRestrict").replace("\n#IPAddr", "\nIPAddr")
        (d / p.name.removesuffix(".example")).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "edgeasd.service" not in result.stderr, result.stderr
    # the drop-ins were read: a typo in one makes verify complain
    (d / "typo.conf").write_text("[Service]\nLoadCredentialz=x:/y\n")
    bad = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert "LoadCredentialz" in bad.stderr
