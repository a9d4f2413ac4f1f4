"""README commands 1 and 2 work with a Python that refuses system-wide installs (PEP 668).

Debian 12 and recent Ubuntu put an ``EXTERNALLY-MANAGED`` file in the interpreter's stdlib
folder; pip then refuses ``pip install`` outside a virtual environment
("externally-managed-environment"). These tests build such an interpreter (a copy of the
running one whose stdlib folder holds the marker), check that pip refuses the old
``python3 -m pip install .``, and run the README's set-up lines, as read by ``.ci/run``, in a
copy of the repository with that interpreter first on the ``PATH``:

* CI-sized: command 1 without its dependencies (``PIP_NO_DEPS=1``, so nothing large is
  downloaded) and ``command -v edgeasd`` in place of the demo (``tests/e2e/test_demo.py`` runs
  the demo);
* slow: command 1 literally (dependencies from the package index, then the demo), then
  command 2 in the same folder without its ``sudo apt-get`` (a test installs no system
  packages) and with ``pytest --collect-only`` in place of the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="builds a Linux interpreter")

#: Folders of a checkout that are not part of the source (build output, environments).
_NOT_SOURCE = (
    ".git", ".venv", "build", "dist", "__pycache__", "*.egg-info", ".pytest_cache",
    ".ruff_cache", ".hypothesis", "runs", "data", "out",
)  # fmt: skip


def readme_command(n: int) -> str:
    """The line after ``# n.`` in README.md, as ``.ci/run`` reads it (its awk rule)."""
    lines = README.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"# {n}."):
            return lines[i + 1]
    raise AssertionError(f"README.md has no '# {n}.' line")


def test_ci_reads_the_same_command_2():
    awk = subprocess.run(
        ["awk", "/^# 2\\./ { getline; print; exit }", str(README)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert awk.stdout.strip() == readme_command(2)
    assert "awk '/^# 2\\./ { getline; print; exit }' README.md" in (REPO / ".ci/run").read_text()


@pytest.mark.parametrize("n", [1, 2])
def test_readme_commands_install_into_a_virtual_environment(n):
    """No bare ``pip install``: it is what Debian 12 refuses."""
    words = readme_command(n).split("&&")
    installs = [w.strip() for w in words if " install " in f" {w} " and "pip" in w]
    assert installs, readme_command(n)
    venv = words.index(next(w for w in words if "-m venv .venv" in w))
    for w in installs:
        assert words.index(next(x for x in words if x.strip() == w)) > venv
        assert not w.startswith(("python3 -m pip", "sudo pip", "pip3 ")), w


def _externally_managed_python(root: Path) -> Path:
    """A copy of the running interpreter whose stdlib folder holds ``EXTERNALLY-MANAGED``.

    The binary is copied (Python finds its prefix from its own location), every entry of
    the base installation's ``lib/`` is linked, except the stdlib folder, which is a folder of
    links plus the marker.

    Returns
    -------
    pathlib.Path
        The ``bin`` folder holding ``python3``.
    """
    base = Path(sys.base_prefix)
    binary = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(base)})["stdlib"])
    if not (stdlib / "os.py").is_file() or base not in stdlib.parents:
        pytest.skip(f"unexpected interpreter layout: stdlib {stdlib}, prefix {base}")
    (root / "bin").mkdir(parents=True)
    shutil.copy2(binary, root / "bin" / binary.name)
    for name in ("python3", "python"):
        if not (root / "bin" / name).exists():
            (root / "bin" / name).symlink_to(binary.name)
    lib = root / stdlib.parent.relative_to(base)
    lib.mkdir(parents=True)
    for entry in stdlib.parent.iterdir():
        if entry != stdlib:
            (lib / entry.name).symlink_to(entry)
    (lib / stdlib.name).mkdir()
    for entry in stdlib.iterdir():
        if entry.name != "EXTERNALLY-MANAGED":
            (lib / stdlib.name / entry.name).symlink_to(entry)
    (lib / stdlib.name / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=this Python is managed by the system (test marker)\n"
    )
    return root / "bin"


def _environment(python_bin: Path, **extra: str) -> dict[str, str]:
    """A shell environment without the test's virtual environment, ``python_bin`` first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    ours = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(":") if p not in ours]
    env["PATH"] = ":".join([str(python_bin), *path])
    env.update(extra)
    return env


def _sh(command: str, cwd: Path, env: dict[str, str], timeout: float):
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {command}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture()
def setup(tmp_path):
    """(the externally-managed ``bin`` folder, a copy of the repository)."""
    python_bin = _externally_managed_python(tmp_path / "python")
    checkout = tmp_path / "edgeasd"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(*_NOT_SOURCE), symlinks=True)
    env = _environment(python_bin)
    probe = _sh(
        "command -v python3 && "
        "python3 -c 'import sysconfig; print(sysconfig.get_path(\"stdlib\"))'",
        checkout,
        env,
        60,
    )
    assert probe.returncode == 0, probe.stderr
    where, stdlib = probe.stdout.split()
    assert Path(where).parent == python_bin
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()
    # the premise: the old README line is refused by this interpreter's pip (if it has one)
    old = _sh("python3 -m pip install --no-deps --dry-run .", checkout, env, 120)
    if "No module named pip" not in old.stderr:
        assert old.returncode != 0 and "externally-managed-environment" in old.stderr, old
    return python_bin, checkout


def _skip_when_offline(result: subprocess.CompletedProcess[str]) -> None:
    text = result.stdout + result.stderr
    if result.returncode and any(
        s in text for s in ("Failed to establish a new connection", "No matching distribution")
    ):
        pytest.skip(f"the package index is not reachable: {text[-400:]}")


def test_readme_command_1_installs_with_an_externally_managed_python(setup):
    python_bin, checkout = setup
    command = readme_command(1)
    assert command.endswith(" && edgeasd demo"), command
    # without dependencies edgeasd cannot start: `command -v` finds the activated script
    quick = command.removesuffix(" && edgeasd demo") + " && command -v edgeasd"
    env = _environment(python_bin, PIP_NO_DEPS="1")
    result = _sh(quick, checkout, env, 600)
    _skip_when_offline(result)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(checkout / ".venv" / "bin" / "edgeasd")
    venv_python = checkout / ".venv" / "bin" / "python"
    info = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import importlib.metadata as m, sys; d = m.distribution('edgeasd'); "
            "print(d.metadata['License-Expression']); print(sys.base_prefix)",
        ],
        capture_output=True,
        text=True,
        env=_environment(python_bin),
        # not the repository: a stale `edgeasd.egg-info` left there by an older editable
        # install would shadow the metadata the venv installed (License-Expression None)
        cwd=checkout.parent,
        check=True,
    )
    license_expression, base_prefix = info.stdout.split()
    assert license_expression == "Apache-2.0"  # the SPDX form (PEP 639), not a TOML table
    assert Path(base_prefix) == python_bin.parent  # the venv is the externally-managed one's


@pytest.mark.slow
def test_readme_commands_1_then_2_with_an_externally_managed_python(setup):
    python_bin, checkout = setup
    env = _environment(python_bin)
    first = _sh(readme_command(1), checkout, env, 1800)
    _skip_when_offline(first)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "demo finished" in first.stdout
    words = [w.strip() for w in readme_command(2).split("&&")]
    assert words[0].startswith("sudo apt-get install"), words[0]
    assert words[-1] == "python3 -m pytest", words[-1]
    second = " && ".join([*words[1:-1], "python3 -m pytest --collect-only -q"])
    result = _sh(second, checkout, env, 3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "tests collected" in result.stdout
