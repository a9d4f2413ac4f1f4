"""A tiny DCASE-layout dataset of synthetic clips for pipeline and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def _clip(rng: np.random.Generator, domain: str, anomaly: bool, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f0 = 300.0 if domain == "source" else 520.0
    x = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.01 * rng.standard_normal()) * t)
    x += (0.02 if domain == "source" else 0.05) * rng.standard_normal(len(t))
    if anomaly:
        x += 0.2 * np.sin(2 * np.pi * 3100.0 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return x.astype(np.float32)


def write_tiny_dataset(root: Path, seconds: float = 10.0) -> Path:
    """``root/toy/{train,test}``: section 00, 10 source + 3 target train, 4 test per cell."""
    rng = np.random.default_rng(0)
    plan = [("train", "source", "normal", 10), ("train", "target", "normal", 3)]
    plan += [("test", d, lab, 4) for d in ("source", "target") for lab in ("normal", "anomaly")]
    for split, domain, label, n in plan:
        folder = root / "toy" / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"section_00_{domain}_{split}_{label}_{i:04d}_spd_{i % 2}.wav"
            sf.write(folder / name, _clip(rng, domain, label == "anomaly", seconds), SR)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-dcase"))
