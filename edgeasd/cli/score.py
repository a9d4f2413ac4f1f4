"""``edgeasd score``: one-shot verdicts on recordings against the bank on disk.

Every window gets its verdict from :func:`edgeasd.agent.alerts.decision.decide`, the same as
in the daemon.
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

from edgeasd.cli.common import add_config_arg, config_of, paths_of

#: Columns of ``edgeasd score --csv``, one row per window (no-signal windows included).
SCORE_COLUMNS = (
    "file",
    "window",
    "start_seconds",
    "score",
    "threshold",
    "decision",
    "clipped",
    "clip_fraction",
    "reason",
    "nearest_id",
    "nearest_domain",
)


def cmd_score(args: argparse.Namespace) -> int:
    """``edgeasd score``: one-shot verdicts on recordings against the bank on disk.

    Every readable file is scored, whatever happens to the others: an unreadable one gets
    a named error on stderr, and the exit status is 2 once every other row is written.
    Windows without signal appear with decision ``no-signal`` and their reason; clipped
    windows are scored and flagged.
    """
    from edgeasd.agent.alerts import decision
    from edgeasd.agent.enrollment import bank_lifecycle
    from edgeasd.agent.runloop.stages import check_window, open_model_and_bank, quality_options
    from edgeasd.errors import EdgeasdError

    config = config_of(args)
    embedder, bank, note = open_model_and_bank(config, paths_of(config).bank)
    info = embedder.info
    check_window(config, info)
    if note:
        print(f"note: {note}", file=sys.stderr)
    bank_lifecycle.require_bank(bank, 1)
    hop = config.window.hop_seconds or info.window_seconds
    state = decision.bank_state(bank, config, hop)
    for warning in state.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    domain_of = bank_lifecycle.domain_by_id(bank)
    writer = None
    width = max(4, *map(len, args.files))  # names in full: never two that look alike
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(SCORE_COLUMNS), restval="")
        writer.writeheader()
    else:
        shown = (
            state.threshold_source
            if state.calibrated
            else "uncalibrated: " + str(state.threshold_source)
        )
        print(f"threshold {state.threshold:.4g} ({shown})")
        if state.learning:
            print(f"learning: {state.learning}; no verdicts until then")
        print(
            f"{'file':<{width}} {'windows':>7} {'scored':>6} {'max score':>10} {'mean':>8}  "
            "decision"
        )
    failed = 0
    for file in args.files:
        try:
            rows = _score_file(file, embedder, bank, state, domain_of, hop, quality_options(config))
        except EdgeasdError as exc:  # unreadable: name it, go on with the others
            print(exc.format(), file=sys.stderr, flush=True)
            failed += 1
            continue
        if writer is not None:
            writer.writerows(rows)
            sys.stdout.flush()
        else:
            print(_score_line(file, rows, width), flush=True)
    if failed:
        print(
            f"error: {failed} of {len(args.files)} file(s) could not be scored (see above)",
            file=sys.stderr,
        )
        return 2
    return 0


def _score_file(
    file: str,
    embedder: Any,
    bank: Any,
    state: Any,
    domain_of: dict[int, str],
    hop: float,
    quality: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per window of ``file``: verdict (:func:`~edgeasd.agent.alerts.decision.decide`)."""
    from edgeasd.agent.alerts import decision
    from edgeasd.agent.enrollment import windows
    from edgeasd.audio.io import read_audio
    from edgeasd.errors import AudioFileError

    info = embedder.info
    audio = read_audio(file, sample_rate=info.sample_rate)
    assessed = windows.assessed_windows(
        audio.samples, info.sample_rate, info.window_seconds, hop, quality
    )
    if not assessed:
        raise AudioFileError(
            f"{file}: {audio.duration:.1f} s of audio is shorter than one "
            f"{info.window_seconds:g} s window",
            help=f"score recordings at least {info.window_seconds:g} s long",
        )
    scorable = [w for w, q in assessed if q.scorable]
    by_index: dict[int, tuple[float, int]] = {}
    if scorable:
        embeddings = windows.embed_windows(embedder, [w.samples for w in scorable])
        scores, nearest = bank.score(embeddings, return_nearest=True)
        for w, score, ref in zip(scorable, scores, nearest, strict=True):
            by_index[w.index] = (float(score), int(ref))
    rows = []
    for w, q in assessed:
        score, ref = by_index.get(w.index, (None, None))
        verdict = decision.decide(score, state, q)
        rows.append(
            {
                "file": file,
                "window": w.index,
                "start_seconds": round(w.start_time, 3),
                "score": None if score is None else round(score, 6),
                "nearest_id": ref,
                "nearest_domain": None if ref is None else domain_of[ref],
                **verdict.fields(),
            }
        )
    return rows


def _score_line(file: str, rows: list[dict[str, Any]], width: int) -> str:
    """The table line of one file: windows, scored, max and mean score, summary decision.

    ``file`` is shown in full, padded to ``width`` (the longest name of the batch).
    """
    from edgeasd.agent.alerts import decision

    scored = [r["score"] for r in rows if r.get("score") is not None]
    top = f"{max(scored):>10.4f}" if scored else f"{'-':>10}"
    mean = f"{sum(scored) / len(scored):>8.4f}" if scored else f"{'-':>8}"
    verdict = decision.summarize([r["decision"] for r in rows])
    flags = []
    clipped = sum(bool(r.get("clipped")) for r in rows)
    if clipped:
        flags.append(f"{clipped} clipped")
    silent = [r for r in rows if r["decision"] == "no-signal"]
    if silent:
        flags.append(
            f"{len(silent)} no-signal ({', '.join(sorted({r['reason'] for r in silent}))})"
        )
    label = verdict.upper() if verdict == "anomalous" else verdict
    tail = f"  [{'; '.join(flags)}]" if flags else ""
    return f"{file:<{width}} {len(rows):>7} {len(scored):>6} {top} {mean}  {label}{tail}"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``edgeasd score``."""
    p = subparsers.add_parser(
        "score",
        help="score recordings against the bank",
        description="Score WAV/FLAC recordings against the bank on disk, as the daemon "
        "scores windows: one line per file (windows, scored, max and mean score, decision), "
        "or one CSV row per window.",
    )
    add_config_arg(p)
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="WAV or FLAC recordings, each at least one window (10 s) long",
    )
    p.add_argument(
        "--csv", action="store_true", help="one CSV row per window (default: one line per file)"
    )
    p.set_defaults(func=cmd_score)
