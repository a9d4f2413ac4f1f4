"""The forecast's expected false alerts a day against what the later sessions measure.

At the ``auto`` threshold the forecast's estimate is 0 by construction (the threshold lies
above every margin-scaled evidence score it rests on) and only its bound carries information,
which needs about a day of scored audio: the protocol's 4-minute later sessions cannot check it.
So this checks the estimator itself where the protocol *can* measure: at thresholds below the
operating one (a fraction ``f`` of it), where false alerts are frequent enough to count. Per
condition (the source: commissioned), the forecast's expected alerts a day (1-of-1 debounce,
the bound's threshold lifted so the estimate is always stated) against the alert episodes
the later normal recordings start, per day of audio.

Run with ``python benchmarks/run.py threshold_rules`` (section "Forecast against the
protocol").
"""

from __future__ import annotations

from unittest import mock

import numpy as np

from edgeasd.config import Config
from edgeasd.evaluation.operating_point import (
    build_bank,
    recording_times,
    simulate,
    with_target_recordings,
)
from edgeasd.scoring import forecast as forecast_module

HOP = 10.0
FRACTIONS = (0.5, 0.7, 1.0)


def _later_recordings(d: dict, bank) -> list[np.ndarray]:
    """Scores of each later normal source recording (consecutive windows), in time order."""
    sel = (d["phase"] == "later") & (d["condition"] == "source") & (d["kind"] == "normal")
    rows = np.flatnonzero(sel)
    return [
        bank.score(d["emb"][rows[d["recording"][rows] == r]])
        for r in np.unique(d["recording"][rows])
    ]


def measure(sets: list[tuple[str, int]], cfg: Config, **layout) -> dict[float, list[tuple]]:
    """Per fraction ``f`` of the ``auto`` threshold: (set, forecast a day, measured a day)."""
    from bench_operating_point import CACHE

    out: dict[float, list[tuple]] = {f: [] for f in FRACTIONS}
    per_day = 86400.0 / HOP
    for machine, seed in sets:
        d = with_target_recordings(simulate(machine, seed, CACHE, cfg, **layout), 2)
        bank = build_bank(d, cfg, recording_times(machine, **layout))
        recs = _later_recordings(d, bank)
        windows = sum(r.size for r in recs)
        for f in FRACTIONS:
            t = f * float(bank.threshold_)
            with mock.patch.object(forecast_module, "USEFUL_PER_DAY", float("inf")):
                said = forecast_module.forecast(bank, t, HOP).per_day
            starts = sum(forecast_module.debounced_starts(r > t, 1, 1) for r in recs)
            out[f].append((f"{machine} {seed}", said, starts / windows * per_day))
    return out


def _within(said: float, measured: float) -> bool:
    if said == 0 or measured == 0:
        return said == measured
    return 0.5 <= said / measured <= 2.0


def calibration_table(cfg: Config) -> str:
    """Markdown: per set and fraction, conditions within 2x, pooled forecast and measurement."""
    from bench_operating_point import CHOICE, HELDOUT, LONG_SECONDS

    lines = [
        "| set | threshold | source conditions within 2x | forecast, mean a day | measured, "
        "mean a day | worst condition: forecast / measured |",
        "|---|---|---:|---:|---:|---|",
    ]
    for title, sets, layout in (
        ("choice", CHOICE, {}),
        ("held out", HELDOUT, {}),
        ("held out, 3-min recordings", HELDOUT, {"seconds": LONG_SECONDS}),
    ):
        for f, rows in measure(sets, cfg, **layout).items():
            said = np.array([r[1] for r in rows])
            got = np.array([r[2] for r in rows])
            ok = sum(_within(a, b) for a, b in zip(said, got, strict=True))
            worst = max(rows, key=lambda r: abs(np.log((r[1] + 1) / (r[2] + 1))))
            lines.append(
                f"| {title} | {f:g} x `auto` | {ok}/{len(rows)} | {said.mean():,.0f} | "
                f"{got.mean():,.0f} | {worst[0]}: {worst[1]:,.0f} / {worst[2]:,.0f} |"
            )
    return "\n".join(lines) + (
        "\n\nAt the operating threshold the estimate is 0 in every condition by construction, "
        "and later audio that drifted above the evidence (gearbox 3, pump 3) alerts anyway; "
        "below it, the estimate lies within 2x of the measurement in few conditions: it "
        "reads each condition's later audio off its enrollment evidence, which is the spread "
        "the feasible-margins section shows no statistic predicts. That is why the forecast "
        "states only its bound, and only once a day of audio supports it; the 2x goal is "
        "not met per condition on this protocol."
    )
