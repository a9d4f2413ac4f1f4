"""Operator-facing number formats: plain digits, no exponent, no None."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from edgeasd import readable


def test_examples():
    assert readable.count(2880.4) == "2,880"
    assert readable.count(1234567) == "1,234,567"
    assert readable.count(35.2) == "35"
    assert readable.count(9.14) == "9.1"
    assert readable.count(0) == "0"
    assert readable.count(2) == "2" and readable.count(7.0) == "7"
    assert readable.count(0.004) == "< 0.01"
    assert readable.percent(1e-7) == "< 0.01 %"
    assert readable.count(None) == readable.UNKNOWN
    assert readable.percent(0.25) == "25 %"
    assert readable.percent(0.0051) == "0.51 %"
    assert readable.percent(1.0) == "100 %"
    assert readable.score(4.2881) == "4.29"
    assert readable.score(36.866) == "36.9"
    assert readable.score(0.000955) == "0.000955"
    assert readable.score(12345.6) == "12346"
    assert readable.score(None) == "none"
    assert readable.duration(45) == "45 s"
    assert readable.duration(600) == "10 min"
    assert readable.duration(3 * 3600) == "3 h"
    assert readable.duration(5400) == "1.5 h"
    assert readable.duration(2 * 86400) == "2 days"


FINITE = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@given(FINITE)
def test_never_an_exponent_nor_a_long_tail(x):
    for text in (readable.count(x), readable.score(x), readable.percent(x / 1e12)):
        assert "e+" not in text and "e-" not in text and "None" not in text
        digits = re.sub(r"[^0-9]", "", text.split(".")[1]) if "." in text else ""
        assert len(digits) <= 15  # no 16-digit floats


@given(st.floats(min_value=1e-8, max_value=1e9))
def test_score_keeps_three_significant_digits(x):
    shown = float(readable.score(x))
    assert math.isclose(shown, x, rel_tol=5e-3)


def test_next_accepts_windows_and_durations():
    assert readable.windows_for("60", 10.0) == 60
    assert readable.windows_for("10m", 10.0) == 60
    assert readable.windows_for("10 min", 10.0) == 60
    assert readable.windows_for("95s", 10.0) == 10  # covers 95 s
    assert readable.windows_for("1h", 5.0) == 720
    for bad in ("0", "0s", "ten", "10x", "-5", ""):
        try:
            readable.windows_for(bad, 10.0)
        except ValueError as exc:
            assert "10m" in str(exc)
        else:
            raise AssertionError(bad)
