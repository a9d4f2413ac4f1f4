"""`benchmarks/feasibility.py`: the thresholds at which each goal of issue 17 is met."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import feasibility as bench


def test_false_alarm_threshold_allows_one_window_in_twenty_four():
    normal = np.arange(1.0, 25.0)  # 24 windows, 1..24: 5 % of 24 allows 1 above
    t = bench.fa_threshold(normal)
    assert t == 23.0
    assert np.count_nonzero(normal > t) == 1
    assert np.count_nonzero(normal > np.nextafter(t, 0.0)) == 2


def test_false_alarm_threshold_of_twenty_windows_allows_exactly_one():
    # 5 % of 20 is exactly 1 window: floating point must not round it down to 0
    normal = np.linspace(0.0, 1.9, 20)
    assert bench.fa_threshold(normal) == normal[-2]


def test_detection_threshold_is_the_highest_score_keeping_ninety_percent():
    # kind a: 4, 5, 6, 7; kind b: 10 x4. Below 4 both are fully detected (1.0); at 4 itself
    # kind a detects 3 of 4: mean 0.875 < 0.90. So the supremum is 4.
    kinds = [np.array([4.0, 5.0, 6.0, 7.0]), np.array([10.0] * 4)]
    assert bench.det_threshold(kinds) == 4.0
    assert bench.det_threshold([np.array([3.0, 3.0])]) == 3.0
    assert np.isnan(bench.det_threshold([]))


def test_detection_threshold_with_a_lower_goal():
    kinds = [np.array([4.0, 5.0, 6.0, 7.0]), np.array([10.0] * 4)]
    # mean detection >= 0.5 while kind b alone is detected: any threshold below 10 (at 7 and
    # above, kind a detects none, kind b all: 0.5)
    assert bench.det_threshold(kinds, goal=0.5) == 10.0
