"""`benchmarks/v3_constants.py`: sub-block embeddings, temporary constants, the factor picks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import v3_constants as bench

from edgeasd.scoring import calibrate, density_rules


def _v3_like(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Embeddings built as spectral-v3 builds them (blocks normalized, x sqrt(1/3), anchor)."""
    raw = {"shape": rng.normal(size=(n, 64)), "flux": rng.normal(size=(n, 64)) + 3.0,
           "spectrum": rng.normal(size=(n, 513))}  # fmt: skip
    parts = [raw[k] / np.linalg.norm(raw[k], axis=1, keepdims=True) / np.sqrt(3) for k in raw]
    x = np.concatenate([*parts, np.full((n, 1), 1e-3)], axis=1)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), raw


def _cos(a: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ a.T


def test_sub_blocks_keep_each_block_cosine_with_equal_weights() -> None:
    emb, raw = _v3_like(np.random.default_rng(0), 6)
    np.testing.assert_allclose(_cos(bench.sub_blocks(emb, ("flux",))), _cos(raw["flux"]), atol=1e-5)
    both = bench.sub_blocks(emb, ("shape", "spectrum"))
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-6)
    want = 0.5 * (_cos(raw["shape"]) + _cos(raw["spectrum"]))
    np.testing.assert_allclose(both @ both.T, want, atol=1e-5)


def test_constants_set_and_restore_even_on_error() -> None:
    shipped = (calibrate.FORWARD_MARGIN, density_rules.SPREAD_FACTOR,
               density_rules.LONE_SPREAD_FACTOR)  # fmt: skip
    with pytest.raises(RuntimeError), bench.constants(margin=1.9, lone=3.0):
        assert calibrate.FORWARD_MARGIN == 1.9
        assert density_rules.LONE_SPREAD_FACTOR == 3.0
        assert density_rules.SPREAD_FACTOR == shipped[1]
        raise RuntimeError
    assert (calibrate.FORWARD_MARGIN, density_rules.SPREAD_FACTOR,
            density_rules.LONE_SPREAD_FACTOR) == shipped  # fmt: skip


def _row(det: float, lo: float, hi: float, band: int, fa: int = 0) -> str:
    return (f"| 2 | 0% | {fa}% (yes) | 0.80 | {det:.2f} | 0/17 | {lo:.2f}-{hi:.2f} (median 1.00) "
            f"| {band}% (0.69-2.19 (median 1.27)) |")  # fmt: skip


def test_picks_follow_the_stated_order() -> None:
    # within 2x of 1 first: 0.5 detects most but overshoots 2x
    rows = {0.5: _row(0.92, 0.81, 2.28, 42), 0.75: _row(0.79, 0.62, 1.74, 75),
            1.0: _row(0.71, 0.51, 1.44, 75)}  # fmt: skip
    assert bench.pick_spread(rows) == 0.75
    # nothing within 2x, equal detection: the fewest target false alarms (spectral-v1's 1.5)
    rows = {1.0: _row(0.92, 0.55, 2.73, 75, fa=20), 1.25: _row(0.92, 0.48, 2.35, 75, fa=7),
            1.5: _row(0.92, 0.42, 2.08, 83), 2.0: _row(0.83, 0.35, 1.72, 83)}  # fmt: skip
    assert bench.pick_spread(rows) == 1.5
    # nothing within 2x: within 3x, then detection, then band, then the widest room
    rows = {1.5: _row(0.50, 0.66, 3.07, 58), 2.25: _row(0.35, 0.44, 2.05, 50),
            2.5: _row(0.35, 0.40, 1.84, 50), 3.0: _row(0.25, 0.33, 1.53, 33)}  # fmt: skip
    assert bench.pick_lone(rows) == 2.25
