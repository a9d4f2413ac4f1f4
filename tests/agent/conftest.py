"""Fixtures of the daemon tests: a test model, recordings and a configuration on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from support.onnx_models import machine_sound, make_test_model

from edgeasd.audio.io import write_audio
from edgeasd.config import load_config

RATE = 16000


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> Path:
    """A 1 s, 16 kHz, 16-d test model."""
    return make_test_model(tmp_path_factory.mktemp("model") / "m.onnx", window_seconds=1.0)


def wav(path: Path, parts: list[tuple[float, str]], seed: int = 0) -> Path:
    """Write (seconds, "normal"|"anomalous"|"silence") parts as one WAV."""
    chunks = []
    for i, (sec, kind) in enumerate(parts):
        if kind == "silence":
            chunks.append(np.zeros(round(sec * RATE), np.float32))
        else:
            chunks.append(machine_sound(sec, RATE, anomalous=kind == "anomalous", seed=seed + i))
    write_audio(path, np.concatenate(chunks), RATE, subtype="FLOAT")
    return path


@pytest.fixture
def make_config(tmp_path, model):
    """``make_config(feed, **sections) -> path`` of a YAML config using the test model."""

    def make(feed: Path | None = None, **sections) -> Path:
        data = {
            "model": {"path": str(model)},
            "scoring": {"min_references": 4},
            "paths": {
                "state_dir": str(tmp_path / "state"),
                "runtime_dir": str(tmp_path / "run"),
                "log_dir": str(tmp_path / "log"),
            },
        }
        if feed is not None:
            data["source"] = {"kind": "file", "path": str(feed), "realtime": False}
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        path = tmp_path / "edgeasd.yaml"
        path.write_text(yaml.safe_dump(data))
        load_config(path)  # valid
        return path

    return make
