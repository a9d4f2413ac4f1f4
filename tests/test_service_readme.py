"""systemd/README.md's Install and Upgrade steps, line by line, as far as a container allows.

Each line of the two ``sh`` blocks runs as written, with its system folders moved under one
scratch folder (``/opt/edgeasd`` → ``ROOT/opt/edgeasd``, ``/etc/...`` → ``ROOT/etc/...``):
``systemd-sysusers`` gets ``--root=ROOT``, ``edgeasd service install`` gets
``--dest ROOT/etc/systemd/system``, and ``systemctl`` lines are skipped (no systemd runs
here). The scratch folder lies under ``/opt`` because the unit hides ``/tmp`` and ``/home``
from the service, which ``service install`` refuses. Dependencies come from this test's
environment (``PIP_NO_DEPS=1``, ``PYTHONPATH``): only edgeasd itself is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVICE_README = REPO / "systemd" / "README.md"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or not os.access("/opt", os.W_OK),
    reason="needs root and a writable /opt (the service's ExecStart may not lie under /tmp)",
)


def readme_block(heading: str) -> list[str]:
    """The command lines of the first ``sh`` block under ``## heading``, comments removed."""
    text = SERVICE_README.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = []
    for raw in block.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line:
            lines.append(line)
    return lines


def relocate(line: str, root: Path) -> str | None:
    """``line`` with its system folders under ``root``; None for lines a container cannot run."""
    if line.startswith("systemctl"):
        return None
    for folder in ("/opt/edgeasd", "/usr/local/bin/", "/usr/lib/sysusers.d/", "/etc/edgeasd/"):
        line = re.sub(rf"(?<![\w/.]){re.escape(folder)}", f"{root}{folder}", line)
    line = re.sub(r"(^|&& )systemd-sysusers\b", rf"\1systemd-sysusers --root={root}", line)
    return line.replace(
        "edgeasd service install", f"edgeasd service install --dest {root}/etc/systemd/system"
    )


@pytest.fixture()
def root():
    folder = Path(tempfile.mkdtemp(prefix="edgeasd-readme-test-", dir="/opt"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def checkout(tmp_path):
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis"
    )
    shutil.copytree(REPO, tmp_path / "edgeasd", ignore=ignore, symlinks=True)
    return tmp_path / "edgeasd"


def _run(lines: list[str], root: Path, cwd: Path) -> list[tuple[str, subprocess.CompletedProcess]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{root}/usr/local/bin:{env.get('PATH', '/usr/bin:/bin')}"
    env["PIP_NO_DEPS"] = "1"  # edgeasd itself; its dependencies come from this environment
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p.endswith("-packages"))
    env["EDGEASD_CONFIG"] = ""  # commands name their configuration as the README does
    (root / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    done = []
    for line in lines:
        moved = relocate(line, root)
        if moved is None:
            continue
        result = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {moved}"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        done.append((line, result))
        if line.startswith("edgeasd doctor"):
            continue  # no microphone in a container: doctor fails that check, and says so
        assert result.returncode == 0, f"{moved}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return done


def _check_installed(root: Path, done) -> None:
    unit = root / "etc" / "systemd" / "system" / "edgeasd.service"
    exec_start = next(ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart="))
    assert exec_start == (
        f"ExecStart={root}/usr/local/bin/edgeasd run --config /etc/edgeasd/edgeasd.yaml"
    )
    assert os.path.realpath(root / "usr/local/bin/edgeasd") == str(root / "opt/edgeasd/bin/edgeasd")
    assert (root / "etc" / "edgeasd" / "edgeasd.yaml").read_text() == (
        REPO / "configs" / "edgeasd.yaml"
    ).read_text()
    if shutil.which("systemd-sysusers"):
        assert re.search(r"^edgeasd:", (root / "etc" / "passwd").read_text(), re.MULTILINE)
        assert re.search(r"^audio:.*\bedgeasd\b", (root / "etc" / "group").read_text(), re.M)
    check = next(r for line, r in done if line.startswith("edgeasd config check"))
    assert check.stdout.startswith(f"configuration ok: {root}/etc/edgeasd/edgeasd.yaml")


def test_install_steps_work_as_written(root, checkout):
    lines = readme_block("Install")
    assert lines[0].startswith("python3 -m venv /opt/edgeasd && /opt/edgeasd/bin/pip install .")
    assert any(line.startswith("systemctl enable --now edgeasd") for line in lines)
    done = _run(lines, root, checkout)
    _check_installed(root, done)
    install = next(r for line, r in done if line == "edgeasd service install")
    # the sysusers and config steps are done by now: service install leaves them out
    assert "edgeasd config check --config /etc/edgeasd/edgeasd.yaml" in install.stdout


@pytest.mark.slow
def test_upgrade_steps_work_as_written(root, checkout):
    _run(readme_block("Install"), root, checkout)
    (checkout / "UPGRADED").write_text("a newer release's folder\n")
    done = _run(readme_block("Upgrade"), root, checkout)
    _check_installed(root, done)
    doctor = next(r for line, r in done if line.startswith("edgeasd doctor"))
    assert "model" in doctor.stdout and "Traceback" not in doctor.stderr
