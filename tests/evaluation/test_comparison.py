"""Table II rows, the sensitivity sweep and the operating point on synthetic embeddings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeasd.evaluation.approaches import APPROACHES, Approach, Scored, proposed
from edgeasd.evaluation.comparison import (
    SWEEP_R,
    ApproachResult,
    SweepRow,
    compare,
    evaluate,
    k_values,
    operating_point,
    sweep,
)
from edgeasd.evaluation.report import operating_table, sweep_table, table_ii, table_iii

from .synthetic import two_density_section


@pytest.fixture(scope="module")
def sections():
    # Two sections of different seeds; the second one renamed.
    a = two_density_section(0)
    b = dataclasses.replace(two_density_section(7), section="01")
    return [a, b]


def test_k_values():
    assert k_values(2) == [1]
    assert k_values(10) == [1, 2, 4, 8, 9]
    assert k_values(9) == [1, 2, 4, 8]
    assert k_values(210) == [1, 2, 4, 8, 16, 32, 64, 128, 209]


def test_compare_rows_and_tables(sections):
    results = compare(sections, [APPROACHES["nn"], APPROACHES["knn-ratio"]])
    nn, ratio = (r.row() for r in results)
    assert ratio["target"] > nn["target"] + 0.2
    assert ratio["mixed"] > nn["mixed"]
    assert len(results[0].summary.sections) == 2
    md = table_ii(results)
    assert "| nearest neighbour (no normalization) |" in md
    assert f"{100 * ratio['target']:.2f}" in md
    assert "| proposed: knn (K=1), ratio | no | no | yes |" in table_iii(
        [r.approach for r in results]
    )


def test_sweep_covers_k_and_r(sections):
    rows = sweep(sections)
    knn = [r for r in rows if r.density == "knn"]
    assert [r.value for r in knn] == [float(k) for k in k_values(210)]
    assert [r.value for r in rows if r.density == "gwrp"] == list(SWEEP_R)
    # gwrp with r = 0 is knn with K = 1
    r0 = next(r for r in rows if r.density == "gwrp" and r.value == 0.0)
    assert r0.target == pytest.approx(knn[0].target)
    assert "K=209" in sweep_table(rows) and "r=0.99" in sweep_table(rows)


def test_sweep_rows_equal_the_proposed_approach(sections):
    rows = sweep(sections)
    for row in (rows[0], rows[-1]):  # knn K=1 and gwrp r=1
        kw = {"k": int(row.value)} if row.density == "knn" else {"r": row.value}
        run = proposed(row.density, "ratio", **kw)
        want = evaluate(sections, Approach("x", "", False, False, True, run)).row()
        got = (row.source, row.target, row.mixed, row.official)
        assert got == (want["source"], want["target"], want["mixed"], want["official"])


def test_operating_point_counts(sections):
    d = sections[0]
    scores = np.arange(len(d.test), dtype=float)
    # threshold 74.5: clips 75..199 alarm (the first 50 are source normals, 50..99 target)
    res = ApproachResult(APPROACHES["nn"], None, 0.0, [Scored(scores, 74.5)])
    p = operating_point([d], res)
    assert p.false_alarm == {"source": 0.0, "target": 0.5}
    assert p.detection == {"source": 1.0, "target": 1.0}
    assert p.n_normal == {"source": 50, "target": 50}
    assert "| nn | 0.00 | 50.00 | 100.00 | 100.00 |" in operating_table([p])
    no_thr = dataclasses.replace(res, scored=[Scored(scores)])
    assert operating_point([d], no_thr) is None


def test_plots_are_written(sections, tmp_path):
    pytest.importorskip("matplotlib")
    from edgeasd.evaluation.report import plot_distributions, plot_sweep

    results = compare(sections, [APPROACHES["nn"], APPROACHES["knn-ratio"]])
    png = plot_distributions(sections, results, tmp_path / "d.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
    rows = [SweepRow("knn", 1.0, 0.9, 0.6, 0.7, 0.7), SweepRow("gwrp", 0.5, 0.8, 0.7, 0.7, 0.7)]
    png = plot_sweep(rows, tmp_path / "s.png")
    assert png is not None and png.stat().st_size > 1000


def test_rule_operating_points(sections):
    from edgeasd.evaluation.comparison import rule_operating_points

    points = rule_operating_points(sections[:1], rules=("auto", "quantile"))
    assert [p.name for p in points] == [
        "nn, auto",
        "nn, quantile",
        "knn-ratio, auto",
        "knn-ratio, quantile",
    ]
    default = operating_point(sections[:1], compare(sections[:1], [APPROACHES["knn-ratio"]])[0])
    assert points[2].false_alarm == default.false_alarm
    assert points[2].detection == default.detection


def test_an_uncalibrated_section_has_no_rates_never_zero_false_alarms(sections):
    """A NaN threshold gives no verdict (agent.alerts.decision): its rates are NaN, not 0."""
    from edgeasd.evaluation.comparison import _rates

    d = sections[0]
    scores = np.arange(len(d.test), dtype=float)
    p = _rates("x", sections, [Scored(scores, 74.5), Scored(scores, float("nan"))])
    assert all(np.isnan(v) for v in (*p.false_alarm.values(), *p.detection.values()))
    ok = _rates("x", [d], [Scored(scores, 74.5)])
    assert ok.false_alarm == {"source": 0.0, "target": 0.5}
