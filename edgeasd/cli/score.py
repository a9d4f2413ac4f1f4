"""``edgeasd score``: one-shot verdicts on recordings against the bank on disk.

Every window gets its verdict from :func:`edgeasd.agent.alerts.decision.decide`, the same as
in the daemon.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterator
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
    from edgeasd.terminal import sanitize

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
    width = max(4, *(len(sanitize(f)) for f in args.files))  # in full: never two alike
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
        summary = _FileSummary(file)
        try:
            for row in _score_file(
                file, embedder, bank, state, domain_of, hop, quality_options(config)
            ):
                if writer is not None:
                    writer.writerow(row)
                summary.add(row)
        except EdgeasdError as exc:  # unreadable: name it, go on with the others
            sys.stdout.flush()  # rows of a file that turned out corrupt midway come first
            print(sanitize(exc.format(), newlines=True), file=sys.stderr, flush=True)
            failed += 1
            continue
        if writer is not None:
            sys.stdout.flush()
        else:
            print(summary.line(width), flush=True)
    if failed:
        print(
            f"error: {failed} of {len(args.files)} file(s) could not be scored (see above)",
            file=sys.stderr,
        )
        return 2
    return 0


#: Windows embedded and scored together while a file streams: what ``edgeasd score`` holds
#: in memory besides one read block (16 x 10 s at 16 kHz = 10 MB of float32).
SCORE_BATCH = 16


def _score_file(
    file: str,
    embedder: Any,
    bank: Any,
    state: Any,
    domain_of: dict[int, str],
    hop: float,
    quality: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    """One row per window of ``file`` (:func:`~edgeasd.agent.alerts.decision.decide`), streamed.

    The file is read block by block and its windows scored :data:`SCORE_BATCH` at a time,
    as enrollment streams files: memory does not grow with the file's length (a 2 GB WAV
    took 8.4 GB when it was read whole, issue 20; ``tests/faults/test_bad_input.py``).

    Raises
    ------
    AudioFileError
        The file cannot be read (raised before the first row, or where a block turns out
        corrupt), or holds less than one window.
    """
    from edgeasd.agent.enrollment.file_enrollment import iter_file_windows
    from edgeasd.errors import AudioFileError

    info = embedder.info
    stats: dict[str, float] = {"seconds": 0.0}
    pending: list[tuple[Any, Any]] = []
    seen = 0
    for item in iter_file_windows(file, info, hop, quality, name=file, stats=stats):
        pending.append(item)
        seen += 1
        if len(pending) >= SCORE_BATCH:  # silent windows are held too: count them all
            yield from _rows(file, pending, embedder, bank, state, domain_of)
            pending = []
    if not seen:
        raise AudioFileError(
            f"{file}: {stats['seconds']:.1f} s of audio is shorter than one "
            f"{info.window_seconds:g} s window",
            help=f"score recordings at least {info.window_seconds:g} s long",
        )
    yield from _rows(file, pending, embedder, bank, state, domain_of)


def _rows(
    file: str,
    assessed: list[tuple[Any, Any]],
    embedder: Any,
    bank: Any,
    state: Any,
    domain_of: dict[int, str],
) -> Iterator[dict[str, Any]]:
    """The rows of a run of windows: the scorable ones embedded and scored in one batch."""
    from edgeasd.agent.alerts import decision
    from edgeasd.agent.enrollment import windows

    scorable = [w for w, q in assessed if q.scorable]
    by_index: dict[int, tuple[float, int]] = {}
    if scorable:
        embeddings = windows.embed_windows(embedder, [w.samples for w in scorable])
        scores, nearest = bank.score(embeddings, return_nearest=True)
        for w, score, ref in zip(scorable, scores, nearest, strict=True):
            by_index[w.index] = (float(score), int(ref))
    for w, q in assessed:
        score, ref = by_index.get(w.index, (None, None))
        verdict = decision.decide(score, state, q)
        yield {
            "file": file,
            "window": w.index,
            "start_seconds": round(w.start_time, 3),
            "score": None if score is None else round(score, 6),
            "nearest_id": ref,
            "nearest_domain": None if ref is None else domain_of[ref],
            **verdict.fields(),
        }


class _FileSummary:
    """The table line of one file, accumulated row by row (nothing per window is kept)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.windows = 0
        self.scored = 0
        self.top = -math.inf
        self.total = 0.0
        self.clipped = 0
        self.decisions: set[str] = set()
        self.silent = 0
        self.silent_reasons: set[str] = set()

    def add(self, row: dict[str, Any]) -> None:
        """Count one row of :func:`_score_file`."""
        self.windows += 1
        self.decisions.add(row["decision"])
        if row.get("score") is not None:
            self.scored += 1
            self.top = max(self.top, row["score"])
            self.total += row["score"]
        self.clipped += bool(row.get("clipped"))
        if row["decision"] == "no-signal":
            self.silent += 1
            self.silent_reasons.add(str(row["reason"]))

    def line(self, width: int) -> str:
        """Windows, scored, max and mean score, summary decision.

        The name is sanitized and shown in full, padded to ``width`` (the longest of the batch).
        """
        from edgeasd.agent.alerts import decision
        from edgeasd.terminal import sanitize

        top = f"{self.top:>10.4f}" if self.scored else f"{'-':>10}"
        mean = f"{self.total / self.scored:>8.4f}" if self.scored else f"{'-':>8}"
        verdict = decision.summarize(sorted(self.decisions))
        flags = []
        if self.clipped:
            flags.append(f"{self.clipped} clipped")
        if self.silent:
            flags.append(f"{self.silent} no-signal ({', '.join(sorted(self.silent_reasons))})")
        label = verdict.upper() if verdict == "anomalous" else verdict
        tail = f"  [{'; '.join(flags)}]" if flags else ""
        name = sanitize(self.file)
        return f"{name:<{width}} {self.windows:>7} {self.scored:>6} {top} {mean}  {label}{tail}"


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
