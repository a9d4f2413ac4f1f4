"""Score files in the official DCASE format, and the official metric over a folder of them.

A score file ``anomaly_score_<machine>_section_<XX>_test.csv`` holds rows ``<file name>,<score>``
(no header), one per test clip of the section; ``decision_result_<machine>_section_<XX>_test.csv``
holds rows ``<file name>,<0|1>``. The DCASE 2022 baseline's ``..._section_<XX>.csv`` (no
``_test``) and the DCASE 2020 ``anomaly_score_<machine>_id_<XX>.csv`` are read as well.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeasd.atomic import PUBLIC, write_bytes_atomic
from edgeasd.errors import InputError
from edgeasd.evaluation.datasets import (
    DOMAINS,
    LABELS,
    DatasetError,
    GroundTruth,
    parse_clip_name,
    read_ground_truth,
)
from edgeasd.evaluation.metrics import (
    IdResult,
    SectionResult,
    Summary,
    id_result,
    section_result,
    summarize,
)

_SCORE_NAME = re.compile(
    r"^anomaly_score_(?P<machine>.+)_(?P<kind>section|id)_(?P<sec>\d\d)"
    r"(?:_test)?\.csv$"
)


def score_file_name(machine: str, section: str, kind: str = "anomaly_score") -> str:
    """``anomaly_score_<machine>_section_<XX>_test.csv`` (or ``decision_result_...``)."""
    return f"{kind}_{machine}_section_{section}_test.csv"


def _write_rows(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    write_bytes_atomic(path, text.getvalue().encode(), PUBLIC, fsync=False)


def write_score_file(
    directory: str | Path,
    machine: str,
    section: str,
    names: Sequence[str],
    scores: np.ndarray,
    decisions: np.ndarray | None = None,
) -> Path:
    """Write one section's scores (and optionally decisions) in the official format.

    Parameters
    ----------
    names : sequence of str, length n
        Test file names (no folders).
    scores : (n,) float array
        Anomaly scores, higher = more anomalous; written with full ``repr`` precision.
    decisions : (n,) array of {0, 1}, optional
        Written to ``decision_result_<machine>_section_<XX>_test.csv`` (the 2023–2025 evaluator
        requires that file).

    Returns
    -------
    Path
        The score file.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(names),) or not np.all(np.isfinite(s)):
        raise InputError(f"need {len(names)} finite scores, got shape {s.shape}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / score_file_name(machine, section)
    _write_rows(path, [(n, repr(float(v))) for n, v in zip(names, s, strict=True)])
    if decisions is not None:
        d = np.asarray(decisions).astype(int)
        if d.shape != s.shape:
            raise InputError(f"decisions {d.shape} and scores {s.shape} differ in shape")
        _write_rows(
            directory / score_file_name(machine, section, "decision_result"),
            [(n, str(int(v))) for n, v in zip(names, d, strict=True)],
        )
    return path


@dataclass(frozen=True)
class ScoreFile:
    """The content of one score file.

    Attributes
    ----------
    machine, section : str
        From the file name (``section`` is the machine ID for the 2020 ``..._id_XX.csv``).
    kind : str
        ``"section"`` (DCASE 2021–2025) or ``"id"`` (DCASE 2020).
    names : tuple of str
    scores : (n,) float64 array
    """

    path: Path
    machine: str
    section: str
    kind: str
    names: tuple[str, ...]
    scores: np.ndarray


def read_score_file(path: str | Path) -> ScoreFile:
    """Read one ``anomaly_score_*.csv`` file (rows ``<file>,<score>``)."""
    path = Path(path)
    m = _SCORE_NAME.match(path.name)
    if m is None:
        raise DatasetError(
            f"{path.name} is not named like an official score file",
            help="expected anomaly_score_<machine>_section_<XX>_test.csv",
        )
    names, scores = [], []
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            try:
                value = float(row[1])
            except (IndexError, ValueError):
                raise DatasetError(
                    f"{path}:{lineno}: expected '<file>,<score>', got {row!r}",
                    help="score files have no header",
                ) from None
            if not math.isfinite(value):
                raise DatasetError(
                    f"{path}:{lineno}: score {row[1]!r} is not finite",
                    help="fix the system that wrote the scores",
                )
            names.append(row[0].strip())
            scores.append(value)
    if not names:
        raise DatasetError(f"{path} is empty", help="rewrite the score file")
    return ScoreFile(path, m["machine"], m["sec"], m["kind"], tuple(names), np.array(scores))


def read_score_dir(directory: str | Path) -> list[ScoreFile]:
    """Every score file in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"score folder {directory} does not exist", help="check SCORE_DIR")
    files = [
        read_score_file(p)
        for p in sorted(directory.glob("anomaly_score_*.csv"))
        if _SCORE_NAME.match(p.name)
    ]
    if not files:
        raise DatasetError(
            f"no anomaly_score_<machine>_section_<XX>_test.csv in {directory}",
            help="point SCORE_DIR at the folder the system wrote its scores to",
        )
    return files


def _labels(sf: ScoreFile, truth: GroundTruth | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels 0/1, domains 0/1 or None) of a score file's rows."""
    labels, domains = [], []
    for name in sf.names:
        hit = truth.get((sf.machine, name)) if truth is not None else None
        if hit is None:
            try:
                c = parse_clip_name(name, sf.machine)
            except InputError:
                c = None
            if c is None or c.label is None:
                raise DatasetError(
                    f"{sf.path.name}: no label for {name!r}",
                    help="pass --ground-truth with the evaluator's ground_truth_data/ folder",
                )
            hit = (c.label, c.domain)
        labels.append(LABELS.index(hit[0]))
        domains.append(None if hit[1] is None else DOMAINS.index(hit[1]))
    if truth is not None:
        expected = {n for (m, n) in truth if m == sf.machine and _in_section(n, sf)}
        missing = expected - set(sf.names)
        if expected and missing:
            raise DatasetError(
                f"{sf.path.name} lacks {len(missing)} of the {len(expected)} clips of the "
                f"ground truth, e.g. {sorted(missing)[0]!r}",
                help="score every test clip of the section",
            )
    dom = None if any(d is None for d in domains) else np.array(domains)
    return np.array(labels), dom


def _in_section(name: str, sf: ScoreFile) -> bool:
    tag = f"section_{sf.section}_" if sf.kind == "section" else f"id_{sf.section}_"
    return name.startswith(tag) or f"_{tag}" in name


def evaluate_score_files(
    files: Sequence[ScoreFile], ground_truth: GroundTruth | None = None
) -> Summary | list[IdResult]:
    """The official metric over score files.

    Returns
    -------
    Summary
        For DCASE 2021–2025 section files (domains required).
    list of IdResult
        For DCASE 2020 machine-ID files (see :func:`metrics.summarize_2020`).
    """
    kinds = {f.kind for f in files}
    if len(kinds) != 1:
        raise DatasetError(
            "the folder mixes DCASE 2020 (_id_XX) and later (_section_XX) files",
            help="evaluate each challenge year's scores separately",
        )
    if kinds == {"id"}:
        out = []
        for f in files:
            y, _ = _labels(f, ground_truth)
            out.append(id_result(f.machine, f.section, y, f.scores))
        return out
    results: list[SectionResult] = []
    for f in files:
        y, d = _labels(f, ground_truth)
        if d is None:
            raise DatasetError(
                f"{f.path.name}: clips without a source/target domain",
                help="pass --ground-truth with ground_truth_domain/",
            )
        results.append(section_result(f.machine, f.section, y, f.scores, d))
    return summarize(results)


def evaluate_score_dir(
    directory: str | Path, ground_truth: str | Path | None = None
) -> Summary | list[IdResult]:
    """:func:`evaluate_score_files` over a folder (ground truth as for ``read_ground_truth``)."""
    truth = read_ground_truth(ground_truth) if ground_truth is not None else None
    return evaluate_score_files(read_score_dir(directory), truth)
