"""Shared fixtures.

Tests may read the real clips in ``../shared/data`` (see ``../shared/data/ATTRIBUTION.md``:
DCASE 2023 Task 2 clips, CC BY 4.0; MIMII clips, CC BY-SA 4.0; DCASE 2022 scores, MIT).
The product itself never depends on that folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# CI and development machines are shared and noisy: a property test must fail on a wrong
# result, never on wall-clock time (speed goals live in benchmarks/).
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGEASD_SHARED_DATA", REPO.parent / "shared" / "data"))
#: The tests that need the ``train`` extra (torch, onnxscript): all marked ``train``.
TRAIN_TESTS = REPO / "tests" / "train"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without torch, ``pytest -m "not train"`` does not even import the torch tests.

    Otherwise they are collected and run: a missing torch is a collection error, never a
    silent skip (CI installs the extra, README command 2).
    """
    deselected = "not train" in (config.option.markexpr or "")
    inside = collection_path == TRAIN_TESTS or TRAIN_TESTS in collection_path.parents
    if inside and deselected:
        return importlib.util.find_spec("torch") is None or None
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under ``tests/train`` ``train`` (before ``-m`` selects)."""
    for item in items:
        if TRAIN_TESTS in item.path.parents:
            item.add_marker(pytest.mark.train)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only folder of real test clips; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep every test's state, runtime and log directories out of the user's home."""
    base = tmp_path_factory.mktemp("edgeasd-dirs")
    for var in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY", "LOGS_DIRECTORY"):
        d = base / var.lower()
        d.mkdir()
        monkeypatch.setenv(var, str(d))
