"""``edgeasd eval``: embed a DCASE-layout dataset, compare approaches, write scores and a report.

Each clip is embedded as the mean of the model's embeddings of its consecutive,
non-overlapping windows (a clip shorter than one window is repeated to fill it); under the
cosine metric the window embeddings are L2-normalized before averaging. Embeddings are cached
per model and file list (:mod:`edgeasd.evaluation.cache`).

Outputs under ``out``: ``scores/<approach>/anomaly_score_<machine>_section_<XX>_test.csv`` (and
``decision_result_...`` where the approach has a calibrated threshold) in the official format,
``report.md``, ``results.json``, and ``sweep.png`` / ``distributions.png`` when matplotlib is
installed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeasd.evaluation import comparison
from edgeasd.evaluation.approaches import APPROACHES, SectionData, select
from edgeasd.evaluation.cache import EmbeddingCache
from edgeasd.evaluation.comparison import ApproachResult, OperatingPoint, SweepRow
from edgeasd.evaluation.datasets import Clip, DatasetError, group_sections, scan_dataset
from edgeasd.evaluation.report import (
    operating_table,
    plot_distributions,
    plot_sweep,
    sweep_table,
    table_ii,
    table_iii,
)
from edgeasd.evaluation.scorefiles import write_score_file

log = logging.getLogger(__name__)

#: Windows per onnxruntime call.
BATCH = 16


def clip_windows(samples: np.ndarray, n: int) -> np.ndarray:
    """Consecutive non-overlapping windows of ``n`` samples, shape ``(max(1, len // n), n)``."""
    x = np.asarray(samples, dtype=np.float32)
    if len(x) < n:
        x = np.resize(x, n)  # repeats the clip
    w = len(x) // n
    return x[: w * n].reshape(w, n)


def embed_clips(clips: Sequence[Clip], embedder, progress: bool = True) -> np.ndarray:
    """Embeddings ``(len(clips), dim)`` float32 of whole clips (see the module docstring).

    Parameters
    ----------
    embedder : edgeasd.embedding.onnx.Embedder
        Anything with ``info`` (``sample_rate``, ``dim``, ``metric``), ``window_samples`` and
        ``embed((b, samples)) -> (b, dim)``.
    """
    from edgeasd.audio.io import read_audio

    info = embedder.info
    out = np.empty((len(clips), info.dim), dtype=np.float32)
    items = clips
    if progress:
        from tqdm import tqdm

        items = tqdm(clips, desc="embedding", unit="clip")
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        emb = embedder.embed(np.concatenate([w for _, w in pending]))
        if info.metric == "cosine":
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        start = 0
        for i, w in pending:
            out[i] = emb[start : start + len(w)].mean(axis=0)
            start += len(w)
        pending.clear()

    for i, clip in enumerate(items):
        audio = read_audio(clip.path, sample_rate=info.sample_rate)
        pending.append((i, clip_windows(audio.samples, embedder.window_samples)))
        if sum(len(w) for _, w in pending) >= BATCH:
            flush()
    flush()
    return out


def split_sections(clips: Sequence[Clip]) -> dict[tuple[str, str], tuple[list[Clip], list[Clip]]]:
    """``(machine, section) -> (training clips, test clips)``, checked for use in ``eval``.

    Raises
    ------
    DatasetError
        A section lacks training or test clips, or a clip lacks its label or domain.
    """
    out = {}
    for (machine, section), group in group_sections(clips).items():
        train = [c for c in group if c.split == "train"]
        test = [c for c in group if c.split == "test"]
        where = f"{machine} section {section}"
        if not train or not test:
            raise DatasetError(
                f"{where} has {len(train)} training and {len(test)} test clips",
                help="every section needs both train/ and test/ clips",
            )
        unlabeled = [c.name for c in group if c.domain is None or c.label is None]
        if unlabeled:
            raise DatasetError(
                f"{where}: {len(unlabeled)} clips without label or domain, e.g. {unlabeled[0]}",
                help="pass --ground-truth for anonymized evaluation data; DCASE 2020 data has "
                "no domains (use `edgeasd metrics` on its scores instead)",
            )
        out[(machine, section)] = (train, test)
    return out


def build_sections(clips: Sequence[Clip], embeddings: np.ndarray) -> list[SectionData]:
    """One :class:`SectionData` per (machine, section); ``embeddings (len(clips), dim)``.

    Raises
    ------
    DatasetError
        As :func:`split_sections`.
    """
    index = {id(c): i for i, c in enumerate(clips)}
    sections = []
    for (machine, section), (train, test) in split_sections(clips).items():
        sections.append(
            SectionData(
                machine=machine,
                section=section,
                train=embeddings[[index[id(c)] for c in train]],
                train_domains=np.array([c.domain for c in train]),
                test=embeddings[[index[id(c)] for c in test]],
                test_domains=np.array([c.domain for c in test]),
                test_labels=np.array([int(c.label == "anomaly") for c in test]),
                test_names=tuple(c.name for c in test),
            )
        )
    return sections


@dataclass
class EvaluationReport:
    """What ``edgeasd eval`` produced."""

    markdown: str
    results: list[ApproachResult]
    sweep: list[SweepRow]
    operating: list[OperatingPoint]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serializable figures (no per-clip scores)."""
        return {
            "approaches": {
                r.approach.name: {
                    **r.row(),
                    "title": r.approach.title,
                    "sections": [asdict(s) for s in r.summary.sections],
                }
                for r in self.results
            },
            "sweep": [asdict(r) for r in self.sweep],
            "operating_point": [asdict(p) for p in self.operating],
            "files": self.files,
        }


def write_scores(
    out: Path, sections: Sequence[SectionData], results: Sequence[ApproachResult]
) -> Path:
    """Official score files of every approach under ``out/scores/<approach>/``."""
    root = out / "scores"
    for res in results:
        for d, s in zip(sections, res.scored, strict=True):
            dec = (s.scores > s.threshold).astype(int) if np.isfinite(s.threshold) else None
            write_score_file(
                root / res.approach.name,
                d.machine,
                d.section,
                d.test_names,
                s.scores,
                decisions=dec,
            )
    return root


def render_markdown(
    sections: Sequence[SectionData],
    results: Sequence[ApproachResult],
    sweep_rows: Sequence[SweepRow],
    points: Sequence[OperatingPoint],
    rule_points: Sequence[OperatingPoint],
    model_id: str,
) -> str:
    """The report: Table II, Table III, operating points and (if run) the sweep."""
    n_train = sum(len(d.train) for d in sections)
    n_test = sum(len(d.test) for d in sections)
    parts = [
        f"Model `{model_id}`; {len(sections)} sections, {n_train} training and {n_test} test "
        "clips. Values in %, harmonic means over sections (source/target: that domain's "
        "normals vs all anomalies; mixed: all normals vs all anomalies).",
        "## Comparison (Table II)",
        table_ii(results),
        "## Properties (Table III)",
        table_iii([r.approach for r in results]),
    ]
    if points:
        parts += [
            "## Operating point at the bank's label-free calibrated threshold",
            "Rates in % of test clips scored above each section's threshold (the bank's "
            "default rule, set from leave-one-out scores of the references alone), pooled "
            "over sections.",
            operating_table(points),
        ]
    if rule_points:
        parts += [
            "## Operating point per threshold rule",
            "The same rates for the baseline and ratio normalization (K=1) under each of the "
            "bank's label-free rules (`auto`: the default; `quantile`: 0.95-quantile of the "
            "leave-one-out scores; `gamma`: percentile of a fitted gamma distribution).",
            operating_table(rule_points),
        ]
    if sweep_rows:
        parts += ["## Sensitivity sweep (ratio normalization)", sweep_table(sweep_rows)]
    return "\n\n".join(parts) + "\n"


def run_evaluation(
    data: str | Path,
    model: str | Path | Sequence[str | Path] | None = None,
    out: str | Path = "eval-out",
    ground_truth: str | Path | None = None,
    cache_dir: str | Path | None = None,
    approaches: list[str] | None = None,
    sweep: bool = False,
    threads: int = 1,
    progress: bool = True,
) -> EvaluationReport:
    """Embed ``data`` with ``model`` (default: the shipped default model), compare approaches.

    ``model`` may list several files: their ensemble (``edgeasd.embedding.ensemble``) is evaluated.
    See the module docstring for the outputs written under ``out``.
    """
    from edgeasd.embedding.ensemble import load_embedder
    from edgeasd.embedding.models import default_model_path

    chosen = select(approaches)
    out = Path(out)
    clips = scan_dataset(data, ground_truth)
    split_sections(clips)  # fail on an unusable dataset before the long embedding step
    embedder = load_embedder(model if model is not None else default_model_path(), threads)
    cache = EmbeddingCache(cache_dir if cache_dir is not None else out / "embedding-cache")
    emb = cache.get_or_compute(
        embedder.info.id, [c.path for c in clips], lambda _: embed_clips(clips, embedder, progress)
    )
    sections = build_sections(clips, emb)
    results = comparison.compare(sections, chosen, progress=progress)
    sweep_rows = comparison.sweep(sections, progress=progress) if sweep else []
    points = [p for r in results if (p := comparison.operating_point(sections, r)) is not None]
    rule_points = comparison.rule_operating_points(sections)
    out.mkdir(parents=True, exist_ok=True)
    files = {"scores": str(write_scores(out, sections, results))}
    md = render_markdown(sections, results, sweep_rows, points, rule_points, embedder.info.id)
    plots = {"sweep": plot_sweep(sweep_rows, out / "sweep.png") if sweep_rows else None}
    shown = [r for r in results if r.approach.name in ("nn", "knn-ratio")]
    plots["distributions"] = plot_distributions(sections, shown, out / "distributions.png")
    files.update({k: str(v) for k, v in plots.items() if v is not None})
    (out / "report.md").write_text(md)
    files["report"] = str(out / "report.md")
    report = EvaluationReport(md, results, sweep_rows, points + rule_points, files)
    (out / "results.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


__all__ = [
    "APPROACHES",
    "EvaluationReport",
    "build_sections",
    "clip_windows",
    "embed_clips",
    "run_evaluation",
]
