"""The temporal hold-out protocol behind the default threshold (``bench_operating_point.py``).

Build the bank from *earlier* recordings of each condition, as the agent does, and score
*later* recordings of the same conditions, normal and with each fault kind: a threshold's
false-alarm rate on later normal audio is then a measurement, not an assumption.

Simulated data: for one machine type and seed, two conditions, each a timeline of recordings
rendered with within-condition variation (:mod:`edgeasd.synth.drift`):

* ``source``: 3 sessions (machine start + microphone seating) 3 h apart, 6 recordings of
  40 s every 5 min in each. *Earlier* (enrolled): sessions 0 and 1, 12 recordings = 12 groups
  of 4 windows. *Later* (scored): session 2, 24 normal windows.
* ``target`` (the domain's other operating point, room and microphone), starting 12 h later:
  2 sessions of 6 recordings of 50 s. *Earlier*: the first 2 recordings, 10 windows in 2
  groups, as after a domain shift; *later*: the other 10 recordings, 50 windows.
* faults: for each fault kind and condition, 4 recordings of 10 s at later times (severity
  0.5, 1, 1.5, 2: noticeable to obvious), the same machine with the fault.

Windows are cut, quality-gated and embedded as the agent does (the configured window/hop,
:func:`edgeasd.agent.enrollment.windows.good_windows`,
:func:`edgeasd.agent.runloop.stages.make_embedder`); earlier recordings are enrolled in time
order as groups of ``enrollment.group_seconds``
(:func:`edgeasd.agent.enrollment.enroll.chunk_windows`), source first, tagged with their
condition.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.agent.enrollment.bank_lifecycle import new_bank
from edgeasd.agent.enrollment.enroll import chunk_windows
from edgeasd.agent.enrollment.windows import embed_windows, good_windows
from edgeasd.agent.runloop.stages import make_embedder, quality_options
from edgeasd.config import Config
from edgeasd.evaluation.metrics import roc_auc
from edgeasd.scoring import ReferenceBank
from edgeasd.synth import render
from edgeasd.synth.drift import Recording, timeline
from edgeasd.synth.render import machine_spec

VERSION = 3
SR = 16000
SEVERITIES = (0.5, 1.0, 1.5, 2.0)
TARGET_START_S = 12 * 3600.0


@dataclass(frozen=True)
class Rec:
    """One recording of the protocol."""

    condition: str  # "source" | "target"
    phase: str  # "earlier" | "later"
    kind: str  # "normal" or a fault kind
    index: int
    seconds: float
    recording: Recording
    severity: float = 0.0


def plan(
    machine: str, per_session: int = 6, seconds: float = 40.0, faults: bool = True
) -> list[Rec]:
    """Every recording of one machine type's protocol, earlier ones first, in time order.

    ``per_session`` recordings per session (>= 3) and ``seconds`` per source recording
    (target ones are 10 s longer) size it; the defaults are the benchmark's, smaller values
    give the CI-sized variant. ``faults=False`` leaves out the fault recordings.
    """
    spec = machine_spec(machine)
    out: list[Rec] = []
    src = timeline(3, per_session)
    for i, r in enumerate(src):
        phase = "earlier" if r.session < 2 else "later"
        out.append(Rec("source", phase, "normal", i, seconds, r))
    tgt = [
        Recording(TARGET_START_S + r.time_s, 10 + r.session, TARGET_START_S + r.session_start_s)
        for r in timeline(2, per_session)
    ]
    for i, r in enumerate(tgt):
        out.append(Rec("target", "earlier" if i < 2 else "later", "normal", i, seconds + 10.0, r))
    if not faults:
        return out
    for cond, recs in (("source", src[2 * per_session :]), ("target", tgt[2:])):
        for k, kind in enumerate(spec.anomalies):
            for j, sev in enumerate(SEVERITIES):
                r = recs[(k + 2 * j) % len(recs)]
                rec = Recording(r.time_s + 20.0, r.session, r.session_start_s)
                out.append(Rec(cond, "later", kind, 100 * k + j, 10.0, rec, sev))
    return out


def _seed(seed: int, machine: str, rec: Rec) -> int:
    key = f"{machine}/{rec.condition}/{rec.kind}".encode()
    return int(np.random.SeedSequence([seed, zlib.crc32(key), rec.index]).generate_state(1)[0])


def simulate(
    machine: str,
    seed: int,
    cache: Path | None = None,
    config: Config | None = None,
    **layout: Any,
) -> dict[str, np.ndarray]:
    """Render, window and embed one machine type's protocol (cached under ``cache``).

    ``layout``: keyword arguments of :func:`plan`.

    Returns
    -------
    dict of arrays, one row per kept window (W windows, dim D)
        ``emb`` (W, D) float32; ``condition``, ``phase``, ``kind`` (W,) str; ``recording``
        (W,) int (index into :func:`plan`); ``start`` (W,) float (s from the recording's
        start); ``severity`` (W,) float.
    """
    config = config or Config()
    key = "".join(f"_{k}{v}" for k, v in sorted(layout.items()))
    name = f"{machine}_seed{seed}{key}_v{VERSION}.npz"
    path = None if cache is None else Path(cache) / name
    if path is not None and path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    embedder = make_embedder(config)
    info = embedder.info
    hop = config.window.hop_seconds or info.window_seconds
    attrs = {
        cond: {n: a.values(cond)[0] for n, a in machine_spec(machine).attributes.items()}
        for cond in ("source", "target")
    }
    rows: dict[str, list] = {k: [] for k in ("condition", "phase", "kind", "recording", "start")}
    rows["severity"], embs = [], []
    for i, rec in enumerate(plan(machine, **layout)):
        x = render(
            machine,
            rec.seconds,
            info.sample_rate,
            seed=_seed(seed, machine, rec),
            attributes=attrs[rec.condition],
            anomaly=None if rec.kind == "normal" else rec.kind,
            severity=rec.severity if rec.kind != "normal" else 1.0,
            domain=rec.condition,
            recording=rec.recording,
        )
        windows, _ = good_windows(
            x, info.sample_rate, info.window_seconds, hop, quality_options(config)
        )
        if not windows:
            continue
        embs.append(embed_windows(embedder, [w.samples for w in windows]))
        for w in windows:
            for k, v in zip(
                ("condition", "phase", "kind", "recording", "start", "severity"),
                (rec.condition, rec.phase, rec.kind, i, w.start_time, rec.severity),
                strict=True,
            ):
                rows[k].append(v)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["emb"] = np.concatenate(embs).astype(np.float32)
    if path is None:
        return out
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


#: UNIX time of the protocol's first recording (enrollments carry the recordings' times).
EPOCH = 1.7e9


def recording_times(machine: str, **layout: Any) -> np.ndarray:
    """UNIX start time of each recording of :func:`plan` (indexed like ``data["recording"]``)."""
    return np.array([EPOCH + r.recording.time_s for r in plan(machine, **layout)])


def build_bank(
    data: dict[str, np.ndarray],
    config: Config | None = None,
    times: np.ndarray | None = None,
) -> ReferenceBank:
    """The bank the agent would hold after enrolling the earlier recordings.

    Recordings in time order (source, then target), each split into groups of
    ``enrollment.group_seconds`` by :func:`edgeasd.agent.enrollment.enroll.chunk_windows`,
    tagged with the condition as domain, with the configured scoring options. ``times``
    (:func:`recording_times`): each group is enrolled at its recording's time, so that the
    calibration sees the sessions; None: all at once (one session).
    """
    config = config or Config()
    info = make_embedder(config).info
    window = config.window.seconds or info.window_seconds
    bank = new_bank(config.scoring, info)
    earlier = data["phase"] == "earlier"
    for r in np.unique(data["recording"][earlier]):
        rows = np.flatnonzero(earlier & (data["recording"] == r))
        cond = str(data["condition"][rows[0]])
        for chunk in chunk_windows(data["start"][rows], window, config.enrollment.group_seconds):
            sel = rows[chunk]
            at = None if times is None else float(times[r] + data["start"][sel[0]])
            bank.enroll(data["emb"][sel], domain=cond, group=f"{cond}-{r}-{sel[0]}", at=at)
    return bank


def evaluate(
    data: dict[str, np.ndarray], bank: ReferenceBank, threshold: float
) -> dict[str, dict[str, Any]]:
    """Per condition: false alarms on later normal windows, detection and AUC per fault kind.

    Returns
    -------
    dict
        condition -> ``{"normal": n, "false_alarms": k, "fa_rate": k / n, "max_normal": float,
        "margin": threshold - max_normal, "faults": {kind: {"windows", "detected", "rate",
        "auc"}}}``.
    """
    later = data["phase"] == "later"
    scores = np.full(data["emb"].shape[0], np.nan)
    scores[later] = bank.score(data["emb"][later])
    out: dict[str, dict[str, Any]] = {}
    for cond in sorted(set(data["condition"][later].tolist())):
        sel = later & (data["condition"] == cond)
        normal = scores[sel & (data["kind"] == "normal")]
        fa = int(np.count_nonzero(normal > threshold))
        faults = {}
        for kind in sorted(set(data["kind"][sel].tolist()) - {"normal"}):
            s = scores[sel & (data["kind"] == kind)]
            labels = np.r_[np.zeros(normal.size), np.ones(s.size)]
            detected = int(np.count_nonzero(s > threshold))
            faults[kind] = {
                "windows": int(s.size),
                "detected": detected,
                "rate": detected / s.size,
                "auc": roc_auc(labels, np.r_[normal, s]),
            }
        out[cond] = {
            "normal": int(normal.size),
            "false_alarms": fa,
            "fa_rate": fa / normal.size,
            "max_normal": float(normal.max()),
            "margin": float(threshold - normal.max()),
            "faults": faults,
        }
    return out


def with_target_recordings(
    data: dict[str, np.ndarray], enrolled: int, later_from: int = 6
) -> dict[str, np.ndarray]:
    """The protocol with the target condition enrolled from its first ``enrolled`` recordings.

    Target normal recordings from index ``later_from`` on stay *later* (scored), those in
    between are left out, so that every target size is scored on the same recordings.
    """
    d = dict(data)
    tn = (d["condition"] == "target") & (d["kind"] == "normal")
    recs = np.unique(d["recording"][tn])
    rank = np.searchsorted(recs, d["recording"])
    phase = d["phase"].copy()
    phase[tn] = np.where(
        rank[tn] < enrolled, "earlier", np.where(rank[tn] >= later_from, "later", "-")
    )
    d["phase"] = phase
    return d


def operator_loop(
    data: dict[str, np.ndarray],
    machine: str,
    rule: Callable[[ReferenceBank], float],
    config: Config | None = None,
    per_session: int = 1,
    **layout: Any,
) -> tuple[ReferenceBank, dict[str, dict[str, Any]], int]:
    """The operator in the loop: the first false alarm of each new session is confirmed normal.

    The later normal recordings are scored window by window in time order. The first window of
    a session (:func:`plan`'s ``Recording.session``) that exceeds the threshold is enrolled as
    normal of its condition (a group of its own, as ``edgeasd feedback`` enrolls an alert's
    windows), the threshold is recomputed with ``rule`` and scoring continues. Faults are then
    scored against the final bank. ``per_session``: how many false alarms of one session the
    operator confirms (the later ones are counted, not confirmed). ``layout``: the keyword
    arguments of :func:`plan` the data was simulated with.

    Returns
    -------
    bank : ReferenceBank
        After the corrections.
    result : dict
        :func:`evaluate`'s figures, with ``false_alarms`` / ``fa_rate`` counting every later
        normal window that exceeded the threshold in force when it was scored (the confirmed
        ones included).
    corrections : int
    """
    recs = plan(machine, **layout)
    times = recording_times(machine, **layout)
    bank = build_bank(data, config, times)
    t = rule(bank)
    later = data["phase"] == "later"
    normal = later & (data["kind"] == "normal")
    fa: dict[str, int] = {}
    corrected: dict[tuple[str, int], int] = {}
    for r in np.unique(data["recording"][normal]):
        rows = np.flatnonzero(normal & (data["recording"] == r))
        cond = str(data["condition"][rows[0]])
        session = (cond, recs[int(r)].recording.session)
        for w in rows:
            if float(bank.score(data["emb"][w : w + 1])[0]) <= t:
                continue
            fa[cond] = fa.get(cond, 0) + 1
            if corrected.get(session, 0) < per_session:
                corrected[session] = corrected.get(session, 0) + 1
                at = float(times[int(r)] + data["start"][w])
                bank.enroll(data["emb"][w : w + 1], domain=cond, group=f"feedback-{w}", at=at)
                t = rule(bank)
    result = evaluate(data, bank, t)
    for cond, res in result.items():
        res["false_alarms"] = fa.get(cond, 0)
        res["fa_rate"] = res["false_alarms"] / res["normal"]
    return bank, result, sum(corrected.values())
