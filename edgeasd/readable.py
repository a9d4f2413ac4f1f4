"""Numbers, times and durations as an operator reads them: no ``None``, no ``2.88e+03``.

Every command that prints for people formats through these, so ``status``, ``bank summary``,
``tail`` and the daemon's start line say the same value the same way.
"""

from __future__ import annotations

import math
import re
import time

#: What a value that is not known yet reads as.
UNKNOWN = "not known yet"


def _significant(value: float, n: int) -> str:
    """``value`` with ``n`` significant digits in fixed-point form (never an exponent)."""
    if value == 0:
        return "0"
    digits = max(0, n - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def count(value: float | None) -> str:
    """A count or rate per day: ``2,160``, ``35``, ``9.1``, ``0.5``; ``0`` for zero."""
    if value is None or not math.isfinite(value):
        return UNKNOWN
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) < 0.01:
        return "< 0.01" if value > 0 else "> -0.01"
    return _significant(value, 2)


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with two significant digits: ``25 %``, ``0.51 %``."""
    if fraction is None or not math.isfinite(fraction):
        return UNKNOWN
    value = 100 * fraction
    if value == 0:
        return "0 %"
    if abs(value) < 0.01:
        return "< 0.01 %" if value > 0 else "> -0.01 %"
    return f"{_significant(value, 2)} %" if abs(value) < 100 else f"{value:.0f} %"


def score(value: float | None) -> str:
    """A score or threshold with 3 significant digits, never in exponent form."""
    if value is None or not math.isfinite(value):
        return "none" if value is None else str(value)
    if abs(value) < 1e-9:  # below any distance the bank resolves
        return "0"
    return _significant(value, 3)


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds is None or not math.isfinite(seconds):
        return UNKNOWN
    s = abs(seconds)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h".replace(".0 h", " h")
    return f"{s / 86400:.1f} days".replace(".0 days", " days")


def clock(t: float | None, now: float | None = None) -> str:
    """A local time ``2026-11-30 13:38:40`` and how long ago (``, 12 s ago``)."""
    if t is None:
        return "never"
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    if now is not None:
        text += f" ({duration(now - t)} ago)" if now >= t else ""
    return text


#: Seconds per unit of a written duration (``90s``, ``10m``, ``1.5h``, ``2d``).
DURATION_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """Seconds of a written duration (``90s``, ``10m``, ``10 min``, ``1.5h``), else None.

    A bare number is not a duration (None): callers give it their own unit.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*", text.lower())
    if m is None:
        return None
    return float(m[1]) * DURATION_UNITS[m[2]]


def windows_for(text: str, hop_seconds: float) -> int:
    """``--next`` as a window count: a whole number of windows, or a duration of audio.

    A duration becomes the windows that cover it (``10m`` at a 10 s hop: 60).

    Raises
    ------
    ValueError
        Neither a positive whole number nor a positive duration (the message says which
        forms are accepted).
    """
    forms = "a number of windows (60) or a duration of audio (10m, 90s, 1h)"
    if text.strip().isdigit():
        n = int(text)
    else:
        seconds = parse_duration(text)
        if seconds is None:
            raise ValueError(f"{text!r} is neither {forms}")
        n = math.ceil(seconds / hop_seconds - 1e-9)
    if n < 1:
        raise ValueError(f"{text!r} is no window: give {forms}")
    return n
