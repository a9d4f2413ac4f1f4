"""Folders of labelled real recordings for ``edgeasd eval-real``.

A folder is read in the first of these forms that applies:

1. **A manifest**: ``FOLDER/manifest.csv`` with a header row and the columns ``file`` (path
   relative to the folder), ``machine`` (machine type) and ``label`` (``normal``,
   ``anomaly`` or ``abnormal``); optional ``machine_id`` (default ``"-"``) and ``domain``
   (empty: unknown). Other columns are ignored. ``../shared/data/real-clips`` is one.
2. **The DCASE Task 2 layout** (2020-2025 development sets):
   ``<machine>/{train,test}/section_XX_<domain>_<split>_<label>_....wav``; the section is the
   machine id (``section_XX``), train and test clips are pooled (the evaluation makes its own
   split). ``../shared/data/dcase2023-t2`` is one.
3. **Folders named by label**: ``<machine>/[<machine id>/]<normal|anomaly|abnormal>/*.wav``
   (MIMII's layout, ``../shared/data/mimii``, and the simplest one for a user's own clips).

Files are WAV or FLAC. A labelled recording's label is what the evaluation judges: a wrong
label is the user's error, but an unknown one is refused with the row or path that has it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeasd.evaluation.datasets import DatasetError, scan_dataset

#: Accepted label spellings and what they mean.
LABELS = {"normal": "normal", "anomaly": "anomaly", "abnormal": "anomaly", "anomalous": "anomaly"}
#: Audio file suffixes read from label-named folders.
AUDIO_SUFFIXES = (".wav", ".flac")
MANIFEST = "manifest.csv"
#: The manifest's required columns.
REQUIRED = ("file", "machine", "label")
#: How the three forms are named in messages.
CONVENTION = (
    "a manifest.csv (columns file, machine, label[, machine_id, domain]), the DCASE layout "
    "<machine>/{train,test}/section_XX_..._{normal,anomaly}_....wav, or folders "
    "<machine>/[<id>/]{normal,anomaly}/*.wav"
)


@dataclass(frozen=True)
class LabelledClip:
    """One labelled recording.

    Attributes
    ----------
    path : Path
    machine : str
        Machine type.
    machine_id : str
        The individual machine (``"-"`` when not known).
    label : str
        ``"normal"`` or ``"anomaly"``.
    domain : str or None
        Operating condition (DCASE's source/target), None when not known.
    """

    path: Path
    machine: str
    machine_id: str
    label: str
    domain: str | None = None

    @property
    def name(self) -> str:
        """The file name relative to nothing (for tables and error messages)."""
        return self.path.name


def _label(value: str, where: str) -> str:
    label = LABELS.get(value.strip().lower())
    if label is None:
        raise DatasetError(
            f"{where}: label {value!r} is not one of {', '.join(sorted(LABELS))}",
            help="label each recording normal or anomaly",
        )
    return label


def read_manifest(root: Path) -> list[LabelledClip]:
    """The clips ``root/manifest.csv`` lists (see the module docstring).

    Raises
    ------
    DatasetError
        A required column is missing, a row lacks a value, names a file that does not exist
        or lies outside ``root``, or has an unknown label.
    """
    path = root / MANIFEST
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        header = rows[0].keys() if rows else []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DatasetError(
            f"{path} lacks the column(s) {', '.join(missing)}" if rows else f"{path} is empty",
            help=f"a manifest needs a header row with {', '.join(REQUIRED)}",
        )
    clips = []
    for i, row in enumerate(rows, start=2):
        where = f"{path} line {i}"
        empty = [c for c in REQUIRED if not (row.get(c) or "").strip()]
        if empty:
            raise DatasetError(f"{where}: no {', '.join(empty)}", help="fill in every row")
        rel = Path(row["file"].strip())
        file = root / rel
        if rel.is_absolute() or ".." in rel.parts:  # lexical: symlinked files are fine
            raise DatasetError(
                f"{where}: {row['file']!r} lies outside {root}",
                help="name files relative to the manifest's folder",
            )
        if not file.is_file():
            raise DatasetError(f"{where}: no file {file}", help="fix the path or drop the row")
        clips.append(
            LabelledClip(
                path=file,
                machine=row["machine"].strip(),
                machine_id=(row.get("machine_id") or "").strip() or "-",
                label=_label(row["label"], where),
                domain=(row.get("domain") or "").strip() or None,
            )
        )
    return clips


def _from_dcase(root: Path) -> list[LabelledClip]:
    try:
        clips = scan_dataset(root)
    except DatasetError:
        return []
    return [
        LabelledClip(c.path, c.machine, f"section_{c.section}", c.label, c.domain)
        for c in clips
        if c.label is not None
    ]


def _from_label_folders(root: Path) -> list[LabelledClip]:
    clips = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        parts = path.relative_to(root).parts[:-1]
        at = [i for i, p in enumerate(parts) if p.lower() in LABELS]
        if not at or at[-1] == 0:
            continue
        i = at[-1]
        machine_id = parts[i - 1] if i >= 2 else "-"
        clips.append(LabelledClip(path, parts[0], machine_id, LABELS[parts[i].lower()]))
    return clips


def scan_labelled(root: str | Path) -> list[LabelledClip]:
    """Every labelled recording under ``root``, sorted by machine, id, label and path.

    Raises
    ------
    DatasetError
        ``root`` is not a folder, its manifest is unusable, or it holds no labelled
        recording in any of the three forms.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder", help="pass the folder of recordings")
    if (root / MANIFEST).is_file():
        clips = read_manifest(root)
    else:
        clips = _from_dcase(root) or _from_label_folders(root)
    if not clips:
        raise DatasetError(f"no labelled recordings under {root}", help=f"expected {CONVENTION}")
    return sorted(clips, key=lambda c: (c.machine, c.machine_id, c.label, str(c.path)))


def by_key(clips: Iterable[LabelledClip], level: str) -> dict[tuple[str, ...], list[LabelledClip]]:
    """Clips grouped per machine type (``level="type"``) or per machine id (``"id"``)."""
    if level not in ("type", "id"):
        raise ValueError(f"level must be 'type' or 'id', got {level!r}")
    out: dict[tuple[str, ...], list[LabelledClip]] = {}
    for c in clips:
        key = (c.machine,) if level == "type" else (c.machine, c.machine_id)
        out.setdefault(key, []).append(c)
    return dict(sorted(out.items()))
