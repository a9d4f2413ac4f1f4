"""Fixtures of the embedding tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.onnx_models import make_test_model


@pytest.fixture(scope="session")
def test_model(tmp_path_factory) -> Path:
    """A 0.5 s, 16 kHz, 16-dimensional spectral test model (built once per session)."""
    return make_test_model(tmp_path_factory.mktemp("model") / "test.onnx", window_seconds=0.5)
