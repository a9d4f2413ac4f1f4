"""numba's JIT cache goes to the configured cache folder, never into the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgeasd import jitcache

PACKAGE = Path(jitcache.__file__).resolve().parent

# Compiles the smallest kernel and prints where numba put its cache.
KERNEL_RUN = """
import numpy as np, numba, edgeasd.scoring.kernels as k, os
assert k.neighbours._before(0.1, 1, 0.2, 2)
print(os.environ["NUMBA_CACHE_DIR"], numba.config.CACHE_DIR)
"""
# ... and a fastmath kernel of the scoring path too.
KERNELS_RUN = (
    KERNEL_RUN
    + """
a = np.ones((3, 4), np.float32)
assert k.cross_dist(a, a, k.COSINE).shape == (3, 3)
"""
)


def _copy_package(root: Path) -> Path:
    """A writable copy of the package without caches (as ``pip install .`` leaves it)."""
    shutil.copytree(PACKAGE, root / "edgeasd", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _run(code: str, pythonpath: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(pythonpath), **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=pythonpath,
        check=False,
    )


def _cache_files(root: Path) -> list[Path]:
    return sorted(p for pat in ("*.nbi", "*.nbc") for p in root.rglob(pat))


def test_kernels_cache_into_systemds_cache_directory_not_the_package(tmp_path):
    site = _copy_package(tmp_path / "site")
    cache = tmp_path / "cache"
    result = _run(KERNELS_RUN, site, CACHE_DIRECTORY=f"{cache}:{tmp_path / 'other'}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(cache / "numba")] * 2
    assert _cache_files(site / "edgeasd") == []
    written = _cache_files(cache / "numba")
    assert any(p.name.startswith("neighbours._before") for p in written), written
    assert any(p.name.startswith("score.cross_dist") for p in written), written


def test_xdg_cache_home_is_used_outside_systemd(tmp_path):
    site = _copy_package(tmp_path / "site")
    result = _run(KERNEL_RUN, site, XDG_CACHE_HOME=str(tmp_path / "xdg"), CACHE_DIRECTORY="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == str(tmp_path / "xdg" / "edgeasd" / "numba")
    assert _cache_files(site / "edgeasd") == []
    assert _cache_files(tmp_path / "xdg")


def test_a_numba_imported_before_edgeasd_still_uses_the_cache_folder(tmp_path):
    site = _copy_package(tmp_path / "site")
    result = _run("import numba\n" + KERNEL_RUN, site, CACHE_DIRECTORY=str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "c" / "numba")] * 2
    assert _cache_files(site / "edgeasd") == []


def test_numba_cache_dir_set_by_the_unit_wins():
    env = {"NUMBA_CACHE_DIR": "/var/cache/edgeasd/numba", "CACHE_DIRECTORY": "/elsewhere"}
    assert jitcache.apply(env) == Path("/var/cache/edgeasd/numba")
    assert env["NUMBA_CACHE_DIR"] == "/var/cache/edgeasd/numba"


def test_an_uncreatable_cache_folder_falls_back_to_the_temporary_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = {"CACHE_DIRECTORY": str(blocker / "cache")}
    path = jitcache.apply(env)
    assert path == Path(tempfile.gettempdir()) / f"edgeasd-{os.getuid()}-numba"
    assert env["NUMBA_CACHE_DIR"] == str(path)
    assert not path.is_relative_to(PACKAGE)


def test_importing_edgeasd_applies_the_cache_folder():
    # This process imported edgeasd (conftest): the variable is set for it and children.
    assert os.environ["NUMBA_CACHE_DIR"]
    import numba

    assert numba.config.CACHE_DIR == os.environ["NUMBA_CACHE_DIR"]
