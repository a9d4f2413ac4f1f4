"""The operator loop across threshold margins, and the threshold moves under issue 17's
precondition (tables of ``bench_threshold_rules.py``).

Operator in the loop (:func:`edgeasd.evaluation.operating_point.operator_loop`): the later
normal recordings are scored in time order; the first false alarm of each later session is
confirmed normal (enrolled as a group of its condition, as ``edgeasd feedback ALERT normal``
does), the threshold recomputed, scoring continues; faults are scored against the bank after
the corrections. The margin ``m`` scales the shipped ``auto`` threshold (``m /
FORWARD_MARGIN`` x it: the evidence that sets it on this protocol is the source's
session-forward scores, from 6 groups, so ``auto`` is ``FORWARD_MARGIN`` x their maximum,
with no floor by default). Per margin,
model and set: without corrections ("plain") and with them ("loop"), the worst false-alarm
rate of a commissioned condition (source) and of the target (2 recordings: provisional),
mean detection of the fault kinds with AUC >= 0.99 (source / target; the worst condition's
mean), and the share of conditions whose threshold / highest later normal score lies in
1.1-3. The margin is chosen on the choice sets only.

Run through ``python benchmarks/run.py threshold_rules``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from bench_operating_point import CHOICE, HELDOUT, MODELS, _config

from edgeasd.agent.alerts.threshold_policy import threshold_report
from edgeasd.agent.enrollment.bank_lifecycle import domain_by_id
from edgeasd.config import Config
from edgeasd.evaluation.metrics import roc_auc
from edgeasd.evaluation.operating_point import (
    build_bank,
    evaluate,
    operator_loop,
    plan,
    recording_times,
    simulate,
    with_target_recordings,
)
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.calibrate import FORWARD_MARGIN, ONE_SESSION_MARGIN

MARGINS = (1.1, 1.2, 1.25, 1.5, 2.0)
BAND = (1.1, 3.0)


def _shipped(bank: ReferenceBank, cfg: Config) -> float:
    t = threshold_report(bank, cfg, 10.0)["threshold"]
    return float("nan") if t is None else float(t)


def _summary(rows: list[tuple[float, dict]]) -> str:
    """``rows``: (threshold, :func:`evaluate` result) per set -> the table's cells."""
    fa, det, per_condition, band = _stats([({"source": t, "target": t}, res) for t, res in rows])
    return (
        f"{max(fa['source']):.0%} / {max(fa['target']):.0%} | "
        f"{np.mean(det['source']):.2f} / {np.mean(det['target']):.2f} "
        f"({min(per_condition):.2f}) | {np.mean(band):.0%}"
    )


def _stats(
    rows: list[tuple[dict[str, float], dict]],
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[float], list[bool]]:
    """(threshold per condition, :func:`evaluate`-shaped result) per set -> false-alarm rates
    and detection rates of the kinds with AUC >= 0.99 per condition, mean detection per
    (set, condition), and whether each threshold lies in the band."""
    fa: dict[str, list[float]] = {"source": [], "target": []}
    det: dict[str, list[float]] = {"source": [], "target": []}
    per_condition, band = [], []
    for t, res in rows:
        for c in ("source", "target"):
            fa[c].append(res[c]["fa_rate"])
            clean = [f["rate"] for f in res[c]["faults"].values() if f["auc"] >= 0.99]
            det[c] += clean
            if clean:
                per_condition.append(float(np.mean(clean)))
            band.append(BAND[0] <= t[c] / res[c]["max_normal"] <= BAND[1])
    return fa, det, per_condition, band


def _margin_rows(
    sets: list[tuple[str, int, dict]], cfg: Config, m: float, per_session: int = 1
) -> tuple[str, str, int]:
    def rule(bank: ReferenceBank) -> float:
        return m / FORWARD_MARGIN * _shipped(bank, cfg)

    plain, loop, fixes = [], [], 0
    for machine, _, data in sets:
        d = with_target_recordings(data, 2)
        bank = build_bank(d, cfg, recording_times(machine))
        t = rule(bank)
        plain.append((t, evaluate(d, bank, t)))
        after, res, n = operator_loop(d, machine, rule, cfg, per_session=per_session)
        loop.append((rule(after), res))
        fixes += n
    return _summary(plain), _summary(loop), fixes


def loop_margin_table() -> str:
    lines = [
        "| model | margin | set | plain: worst FA source / target | plain: mean det. source / "
        "target (worst condition) | plain: in 1.1-3 | loop: worst FA source / target | loop: "
        "mean det. (worst condition) | loop: in 1.1-3 | corrections |",
        "|---|---:|---|---|---|---:|---|---|---:|---:|",
    ]
    extra = []
    for name, (model, cache) in MODELS.items():
        cfg = _config(model)
        sets = {
            "choice": [(m, s, simulate(m, s, cache, cfg)) for m, s in CHOICE],
            "held out": [(m, s, simulate(m, s, cache, cfg)) for m, s in HELDOUT],
        }
        for m in MARGINS:
            for title, ss in sets.items():
                plain, loop, fixes = _margin_rows(ss, cfg, m)
                shipped = " (shipped)" if m == FORWARD_MARGIN else ""
                lines.append(f"| {name} | {m:g}{shipped} | {title} | {plain} | {loop} | {fixes} |")
        _, loop3, fixes3 = _margin_rows(sets["held out"], cfg, FORWARD_MARGIN, per_session=3)
        extra.append(
            f"{name}, margin {FORWARD_MARGIN:g}, held out, up to 3 confirmations per session: "
            f"worst FA / mean det. / in 1.1-3 = {loop3.replace(' | ', '; ')} "
            f"({fixes3} corrections)."
        )
    return "\n".join(lines) + (
        "\n\nFA: later normal windows above the threshold in force when each was scored "
        "(confirmed ones included; one window of a source session = 4 %, of a target's = "
        "3 %). The target (2 recordings) is provisional. Chosen on the choice sets: the "
        "smallest margin at which no choice condition alarmed before any correction "
        "(`calibrate.FORWARD_MARGIN`). A confirmation lifts the threshold to at least the margin "
        "x the confirmed window's score (its session-forward score joins the evidence): "
        "confirming the later false alarms of a session too buys little.\n\n" + "\n".join(extra)
    )


def _bank_with(data: dict, machine: str, cfg: Config, source: int, target: int) -> ReferenceBank:
    """The bank of the first ``source`` source and ``target`` target normal recordings."""
    d = dict(data)
    normal = d["kind"] == "normal"
    phase = np.full(d["phase"].shape, "later", dtype=object)
    for cond, n in (("source", source), ("target", target)):
        sel = normal & (d["condition"] == cond)
        recs = np.unique(d["recording"][sel])
        phase[sel & np.isin(d["recording"], recs[:n])] = "earlier"
    d["phase"] = phase.astype(str)
    return build_bank(d, cfg, recording_times(machine))


def stability_table() -> str:
    """Threshold moves per added normal recording, with and without the precondition."""
    recs = [r for r in plan("fan", faults=False)]
    per_session = sum(1 for r in recs if r.condition == "source" and r.recording.session == 0)
    steps = {
        "source 7-12, target 2 (`operating_point`'s stability; the target has 1 session: "
        "precondition not met)": [(i, 2) for i in range(7, 13)],
        "source 7-12, target 7 (both conditions >= 3 groups from 2 sessions)": [
            (i, per_session + 1) for i in range(7, 13)
        ],
        "target 7-12, source 12 (both >= 3 groups from 2 sessions)": [
            (12, j) for j in range(7, 13)
        ],
        "source only 7-12 (one condition, >= 3 groups from 2 sessions)": [
            (i, 0) for i in range(7, 13)
        ],
    }
    lines = [
        "| added recordings | set | moves > 25 % | largest | median |",
        "|---|---|---:|---:|---:|",
    ]
    cfg = Config()
    for title, sets in (("choice", CHOICE), ("held out", HELDOUT)):
        moves: dict[str, list[float]] = {k: [] for k in steps}
        for machine, seed in sets:
            data = simulate(machine, seed, MODELS["spectral-v1 (default)"][1], cfg)
            for name, st in steps.items():
                ts = np.array([_shipped(_bank_with(data, machine, cfg, i, j), cfg) for i, j in st])
                moves[name] += list(np.abs(ts[1:] / ts[:-1] - 1))
        for name, m in moves.items():
            a = np.array(m)
            lines.append(
                f"| {name} | {title} | {np.count_nonzero(a > 0.25)}/{a.size} | {a.max():.0%} | "
                f"{np.median(a):.0%} |"
            )
    return "\n".join(lines) + (
        "\n\nDefault model. The threshold is the margin x the largest evidence score (all of it "
        "session-forward here: one margin), so its relative moves do not depend on the margin. "
        "Source recordings 1-6 are its first "
        "session, 7-12 its second (recording 7: the second session's first); target 1-6 and "
        "7-12 likewise. The threshold follows the largest evidence score: it steps when one new "
        "recording of the newest session scores above every earlier one (held out, under the "
        "precondition: fan 2 at source recording 11, gearbox 2 at 8, valve 3 and gearbox 3 at "
        "target recording 8)."
    )


#: Groups after which a condition's own threshold outweighs the shared one in ``shrunk``
#: (``calibrate.MIN_CONDITION_GROUPS``, as in ``bench_threshold_rules.per_condition_table``).
SHRINK_N0 = 5.0


def _own_evidence(bank: ReferenceBank, cond: str) -> tuple[float, int] | None:
    """``auto`` from one condition's evidence alone: (threshold, groups), None without any.

    As ``Calibration.recent`` / ``margins`` per condition, without the rule that a
    commissioning condition does not set the threshold: its session-forward scores x
    ``FORWARD_MARGIN`` if any, else its forward scores x ``ONE_SESSION_MARGIN`` without its
    first scored group (scored against the other condition only).
    """
    here = bank.domains_ == cond
    groups = bank.groups_
    n = int(np.unique(groups[here]).size)
    session = bank.session_forward_scores_
    if np.isfinite(session[here]).any():
        return FORWARD_MARGIN * float(np.nanmax(session[here])), n
    fw = bank.forward_scores_
    use = here & np.isfinite(fw)
    codes, first = np.unique(groups[use], return_index=True)
    if codes.size > 1:
        use &= groups != codes[np.argmin(first)]
        return ONE_SESSION_MARGIN * float(np.nanmax(fw[use])), n
    return None


def _per_condition(kind: str, cfg: Config) -> Callable[[ReferenceBank], dict[str, float]]:
    """``kind`` "own" or "shrunk" -> the rule bank -> threshold per condition."""

    def rule(bank: ReferenceBank) -> dict[str, float]:
        shared = _shipped(bank, cfg)
        out = {}
        for c in np.unique(bank.domains_).tolist():
            own = _own_evidence(bank, c)
            if own is None:
                out[c] = shared
            elif kind == "own":
                out[c] = own[0]
            else:
                w = own[1] / (own[1] + SHRINK_N0)
                out[c] = w * own[0] + (1 - w) * shared
        return out

    return rule


def _condition_loop(
    data: dict,
    machine: str,
    rule: Callable[[ReferenceBank], dict[str, float]],
    cfg: Config,
    oracle: bool = False,
) -> tuple[dict[str, float], dict, int]:
    """:func:`operator_loop` with one threshold per condition: each window takes the
    threshold of its nearest reference's condition (as ``per_condition_table``), or with
    ``oracle`` of the condition it was recorded in (which the daemon does not know).

    Returns the threshold per condition in force on its later normal windows (median),
    :func:`evaluate`-shaped figures after the corrections, and the corrections.
    """
    recs = plan(machine)
    times = recording_times(machine)
    bank = build_bank(data, cfg, times)
    per, of = rule(bank), domain_by_id(bank)
    later = data["phase"] == "later"
    normal = later & (data["kind"] == "normal")
    fa: dict[str, int] = {}
    corrected: set[tuple[str, int]] = set()
    for r in np.unique(data["recording"][normal]):
        rows = np.flatnonzero(normal & (data["recording"] == r))
        cond = str(data["condition"][rows[0]])
        session = (cond, recs[int(r)].recording.session)
        for w in rows:
            s, near = bank.score(data["emb"][w : w + 1], return_nearest=True)
            if float(s[0]) <= per[cond if oracle else of[int(near[0])]]:
                continue
            fa[cond] = fa.get(cond, 0) + 1
            if session not in corrected:
                corrected.add(session)
                at = float(times[int(r)] + data["start"][w])
                bank.enroll(data["emb"][w : w + 1], domain=cond, group=f"feedback-{w}", at=at)
                per, of = rule(bank), domain_by_id(bank)
    scores, near = bank.score(data["emb"][later], return_nearest=True)
    cond, kind = data["condition"][later], data["kind"][later]
    t = np.array([per[c if oracle else of[int(i)]] for c, i in zip(cond, near, strict=True)])
    res, thresholds = {}, {}
    for c in ("source", "target"):
        sel = cond == c
        nm = sel & (kind == "normal")
        faults = {}
        for k in sorted(set(kind[sel].tolist()) - {"normal"}):
            f = sel & (kind == k)
            labels = np.r_[np.zeros(nm.sum()), np.ones(f.sum())]
            auc = roc_auc(labels, np.r_[scores[nm], scores[f]])
            faults[k] = {"rate": float(np.mean(scores[f] > t[f])), "auc": auc}
        thresholds[c] = float(np.median(t[nm]))
        res[c] = {
            "fa_rate": fa.get(c, 0) / nm.sum(),
            "max_normal": float(scores[nm].max()),
            "faults": faults,
        }
    return thresholds, res, len(corrected)


def _condition_summary(rows: list[tuple[dict[str, float], dict]]) -> str:
    """(threshold per condition, :func:`evaluate`-shaped result) per set -> the table's cells."""
    fa, det, per_condition, band = _stats(rows)
    kinds = det["source"] + det["target"]
    return (
        f"{max(fa['source']):.0%} / {max(fa['target']):.0%} | "
        f"{np.mean(det['source']):.2f} / {np.mean(det['target']):.2f} | "
        f"{min(per_condition):.2f} | {sum(x < 0.5 for x in kinds)}/{len(kinds)} | "
        f"{np.mean(band):.0%}"
    )


def per_condition_loop_table(targets: tuple[int, ...] = (2, 4)) -> str:
    """Per-condition thresholds in the operator loop against the shipped shared one
    (default model; the first false alarm of each later session confirmed)."""
    _, cache = MODELS["spectral-v1 (default)"]
    cfg = _config(None)
    lines = [
        "| thresholds | target recordings | set | worst FA source / target | mean det. "
        "(AUC >= 0.99) source / target | worst condition | kinds < 50 % | in 1.1-3 | "
        "confirmations |",
        "|---|---:|---|---|---|---:|---:|---:|---:|",
    ]
    own, shrunk = _per_condition("own", cfg), _per_condition("shrunk", cfg)
    rules = {
        "own": (own, False),
        "shrunk": (shrunk, False),
        "own, routed by the true condition (oracle)": (own, True),
        "shrunk, routed by the true condition (oracle)": (shrunk, True),
    }
    for n in targets:
        for title, sets in (("choice", CHOICE), ("held out", HELDOUT)):
            data = [(m, with_target_recordings(simulate(m, s, cache, cfg), n)) for m, s in sets]
            shared, fixes = [], 0
            for machine, d in data:
                after, res, k = operator_loop(d, machine, lambda b: _shipped(b, cfg), cfg)
                t = _shipped(after, cfg)
                shared.append(({"source": t, "target": t}, res))
                fixes += k
            cells = {"shared (shipped)": (_condition_summary(shared), fixes)}
            for name, (rule, oracle) in rules.items():
                out = [_condition_loop(d, machine, rule, cfg, oracle) for machine, d in data]
                cells[name] = (
                    _condition_summary([(t, res) for t, res, _ in out]),
                    sum(k for *_, k in out),
                )
            for name, (summary, k) in cells.items():
                lines.append(f"| {name} | {n} | {title} | {summary} | {k} |")
    return "\n".join(lines) + (
        "\n\nOperator loop as in the margins table (first false alarm of each later session "
        "confirmed, faults scored after the corrections); default model. `own`: each "
        f"condition's `auto` from its own evidence alone (session-forward max x "
        f"{FORWARD_MARGIN:g}, else forward max x {ONE_SESSION_MARGIN:g} without its first group, "
        "commissioning or not), the shared one while it has none; `shrunk`: `w own + (1 - w) "
        f"shared`, `w = groups / (groups + {SHRINK_N0:g})`; each window takes the threshold of "
        "its nearest reference's condition (oracle rows: of the condition it was recorded in). "
        "'in 1.1-3': the threshold in force on a condition's later normal windows (median) / "
        "their maximum. The kinds with AUC >= 0.99 are counted on each rule's final bank, so "
        "their number differs where the confirmations differ.\n\n"
        "Verdict: per-condition thresholds do not reach detection >= 0.90 in every condition "
        "in the loop; they lower the worst condition instead (held out, target from 2 "
        "recordings: 0.25 against 0.38 shared; from 4: 0.50 own, 0.58 shrunk and shared). With "
        "2 target recordings the target has no evidence of its own until a confirmation, and "
        "every rule gives the source the threshold the shared one gives it, on every set: the "
        "weak conditions (pump 0 and 3 source 0.58-0.62, fan 1-3 source and pump 0 target 0.75) "
        "sit at 1.6-2.8x their later normal maximum because their own evidence is that far above "
        "their later normals, not because a confirmation in the other condition lifted it. "
        "Where a target window is confirmed (gearbox 2), the target's own threshold becomes "
        "1.25x that drifted window (4.0x the later target normals with `own`, 2.9x `shrunk`, "
        "2.3x shared) and its detection falls from 0.38 to 0.25; with `own` some gearbox 2 "
        "source fault windows are nearest a target reference and take that threshold (source "
        "0.81 -> 0.50; 0.83 over the held-out sets when routed by the true condition). With 4 "
        "target recordings `own` breaks the 5 % false-alarm goal on the choice sets (fan 1 "
        "target 7 %, threshold 0.94x its later normals) and `shrunk` drops fan 1 target to 0.25 "
        "(4.8x). Held out, 'in 1.1-3' stays >= 90 % only where the rule equals the shared one "
        "(`shrunk`, 2 recordings: 94 %); `own` 88 %, every rule 88 % with 4. The shared "
        "threshold is not what costs the detection on this protocol; the spread of each "
        "condition's evidence relative to its later normal audio is (limits above: >= 0.90 "
        "needs a threshold within about 1.25-1.5x of the later normal maximum)."
    )
