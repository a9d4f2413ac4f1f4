"""Fixtures of the training tests: a tiny DCASE-layout dataset written with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE_RATE = 16000
SECONDS = 2.0


def tone_clip(f0: float, rng: np.random.Generator, seconds: float = SECONDS) -> np.ndarray:
    """A harmonic tone at ``f0`` Hz with a little jitter and noise, shape (samples,)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = f0 * (1 + 0.01 * rng.standard_normal())
    x = sum(np.sin(2 * np.pi * k * f * t + rng.uniform(0, 6.3)) / k for k in range(1, 5))
    return (0.1 * x + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def probe_windows() -> np.ndarray:
    """Three 10 s windows at 16 kHz, shape (3, 160000) float32: noise, a tone over a little
    noise, and noise with 2 impacts a second (the fixed spectral models' build checks)."""
    rng = np.random.default_rng(0)
    t = np.arange(160000) / 16000
    clicks = (np.sin(2 * np.pi * 2.0 * t) > 0.999).astype(float)
    return np.stack(
        [
            0.1 * rng.standard_normal(160000),
            0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(160000),
            0.05 * rng.standard_normal(160000) + 0.5 * clicks,
        ]
    ).astype(np.float32)


def write_tiny_dataset(root: Path, n_per_class: int = 8) -> Path:
    """Two machine types × two attribute values, tones of distinct pitch, 2 s clips."""
    rng = np.random.default_rng(0)
    pitches = {
        "pump": {"rpm_10": 150.0, "rpm_20": 300.0},
        "fan": {"rpm_10": 520.0, "rpm_20": 800.0},
    }
    for machine, attrs in pitches.items():
        folder = root / machine / "train"
        folder.mkdir(parents=True)
        i = 0
        for attr, f0 in attrs.items():
            for _ in range(n_per_class):
                name = f"section_00_source_train_normal_{i:04d}_{attr}.wav"
                sf.write(folder / name, tone_clip(f0, rng), SAMPLE_RATE)
                i += 1
        sf.write(
            folder / f"section_00_target_train_normal_{i:04d}_rpm_30.wav",
            tone_clip(attrs["rpm_20"] * 1.5, rng),
            SAMPLE_RATE,
        )
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Root of a tiny DCASE-layout dataset (train split only)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-dcase"))
