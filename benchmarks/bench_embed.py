"""Embedding time of one 10 s window on one thread: int8 vs fp32 models, spectral v1.

Goal (issue 4): the int8 model embeds one window in at most 50 ms on one thread and is
faster than the fp32 model. Models are timed interleaved (one call each per round), so a
busy machine slows all of them alike; the table reports medians over the rounds.

Run: ``python benchmarks/bench_embed.py`` or ``python benchmarks/run.py embed``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeasd.embedding.models import (
    DIRECTACT_FP32_MODEL,
    DIRECTACT_MODEL,
    MODELS_DIR,
    SPECTRAL_MODEL,
    SPECTRAL_V2_FP32_MODEL,
    SPECTRAL_V2_MODEL,
    SPECTRAL_V3_FP32_MODEL,
    SPECTRAL_V3_MODEL,
)
from edgeasd.embedding.onnx import Embedder

ROUNDS = 40
WARMUP = 3
GOAL_MS = 50.0


def shipped_models() -> dict[str, Path]:
    """Label -> path of every shipped model file present."""
    names = {
        "Direct-ACT int8": DIRECTACT_MODEL,
        "Direct-ACT fp32": DIRECTACT_FP32_MODEL,
        "spectral-v2 int8 (opt-in)": SPECTRAL_V2_MODEL,
        "spectral-v2 fp32": SPECTRAL_V2_FP32_MODEL,
        "spectral-v3 int8 (opt-in)": SPECTRAL_V3_MODEL,
        "spectral-v3 fp32": SPECTRAL_V3_FP32_MODEL,
        "spectral-v1 (default)": SPECTRAL_MODEL,
    }
    return {k: MODELS_DIR / v for k, v in names.items() if (MODELS_DIR / v).is_file()}


def time_models(paths: dict[str, Path], rounds: int = ROUNDS) -> dict[str, np.ndarray]:
    """Per-call seconds of each model on one window, interleaved.

    Returns
    -------
    dict of str to numpy.ndarray, each shape (rounds,)
    """
    embedders = {k: Embedder(p, threads=1) for k, p in paths.items()}
    rng = np.random.default_rng(0)
    windows = {
        k: (0.1 * rng.standard_normal((1, e.window_samples))).astype(np.float32)
        for k, e in embedders.items()
    }
    for k, e in embedders.items():
        for _ in range(WARMUP):
            e.embed(windows[k])
    times = {k: np.empty(rounds) for k in embedders}
    for r in range(rounds):
        for k, e in embedders.items():
            t0 = time.perf_counter()
            e.embed(windows[k])
            times[k][r] = time.perf_counter() - t0
    return times


def main() -> None:
    """Print the Markdown table."""
    paths = shipped_models()
    times = time_models(paths)
    print("One 10 s window at 16 kHz, batch 1, onnxruntime CPU, 1 thread; median (p90) ms.\n")
    print("| model | file | size | median ms | p90 ms |")
    print("|---|---|---:|---:|---:|")
    med = {}
    for k, t in times.items():
        med[k] = 1e3 * np.median(t)
        size = paths[k].stat().st_size / 2**20
        p90 = 1e3 * np.percentile(t, 90)
        print(f"| {k} | `{paths[k].name}` | {size:.1f} MiB | {med[k]:.1f} | {p90:.1f} |")
    if {"Direct-ACT int8", "Direct-ACT fp32"} <= set(med):
        i8, f32 = med["Direct-ACT int8"], med["Direct-ACT fp32"]
        verdict = "met" if i8 <= GOAL_MS and i8 < f32 else "NOT met"
        print(
            f"\nint8 / fp32 time ratio: {i8 / f32:.2f}; goal (int8 <= {GOAL_MS:.0f} ms and "
            f"faster than fp32): {verdict}."
        )
    for v in ("v2", "v3"):
        if {f"spectral-{v} int8 (opt-in)", f"spectral-{v} fp32"} <= set(med):
            ratio = med[f"spectral-{v} int8 (opt-in)"] / med[f"spectral-{v} fp32"]
            print(
                f"spectral-{v} int8 / fp32 time ratio: {ratio:.2f} (int8-stored matrices, "
                "float math)"
            )


if __name__ == "__main__":
    main()
