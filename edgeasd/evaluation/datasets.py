"""DCASE Task 2 dataset layouts: file names, directory scans and ground-truth files.

Supported layouts (``<root>/<machine>/{train,test}/<name>.wav``; ``root`` may also be any
folder above the machine folders):

* DCASE 2021–2025 development and evaluation training files,
  ``section_XX_{source|target}_{train|test}_{normal|anomaly}_NNNN[_<attributes>].wav``;
* DCASE 2022–2025 anonymized evaluation test files ``section_XX_NNNN.wav``, whose labels and
  domains come from the official evaluator's ground-truth CSVs
  ``ground_truth_data/ground_truth_<machine>_section_XX_test.csv`` (rows ``<file>,<0|1>``,
  1 = anomaly, no header) and ``ground_truth_domain/...`` (same rows, 1 = target domain);
* DCASE 2020 ``{normal|anomaly}_id_XX_NNNNNNNN.wav`` (no domains) and its anonymized evaluation
  files ``id_XX_NNNNNNNN.wav`` with the 2020 evaluator's ``eval_data_list.csv`` (a line with only
  the machine type, then rows ``<anonymized file>,<original file>,<0|1>``).

A 2020 machine ID is stored as the clip's ``section`` so that every layout is evaluated per
(machine, section).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from edgeasd.errors import EdgeasdError, InputError

_DEV = re.compile(
    r"^section_(?P<section>\d\d)_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<index>\d+)(?:_(?P<attrs>.+))?\.wav$"
)
_ANON = re.compile(r"^section_(?P<section>\d\d)_(?P<index>\d+)\.wav$")
_DEV2020 = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<section>\d\d)_(?P<index>\d+)\.wav$")
_ANON2020 = re.compile(r"^id_(?P<section>\d\d)_(?P<index>\d+)\.wav$")
_SPLIT_DIRS = {"train": "train", "test": "test", "source_test": "test", "target_test": "test"}

DOMAINS = ("source", "target")
LABELS = ("normal", "anomaly")


class DatasetError(EdgeasdError):
    """A dataset folder or ground-truth file cannot be used for evaluation."""


@dataclass(frozen=True)
class Clip:
    """One audio clip of a DCASE-layout dataset.

    Attributes
    ----------
    path : Path
        The WAV file.
    machine : str
        Machine type (the folder name, e.g. ``"fan"``).
    section : str
        Two-digit section, or the machine ID for the 2020 layout.
    split : str
        ``"train"`` or ``"test"``.
    domain : str or None
        ``"source"``, ``"target"``, or None when unknown (2020, unlabelled evaluation data).
    label : str or None
        ``"normal"``, ``"anomaly"``, or None when unknown.
    attributes : str
        The raw attribute part of the name (``"car_A2_spd_28V_mic_1"``), ``""`` if none.
    layout : str
        ``"dcase2021+"``, ``"anonymized"``, ``"dcase2020"`` or ``"anonymized2020"``.
    """

    path: Path
    machine: str
    section: str
    split: str
    domain: str | None
    label: str | None
    attributes: str = ""
    layout: str = "dcase2021+"

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name

    @property
    def attribute_dict(self) -> dict[str, str]:
        """Attributes as ``key -> value`` when they come in pairs, else ``{"attributes": raw}``."""
        if not self.attributes:
            return {}
        tok = self.attributes.split("_")
        if len(tok) % 2:
            return {"attributes": self.attributes}
        return dict(zip(tok[::2], tok[1::2], strict=True))


def parse_clip_name(name: str, machine: str, split: str | None = None) -> Clip:
    """Parse a DCASE file name into a :class:`Clip` (path = the bare name).

    Parameters
    ----------
    name : str
        File name, e.g. ``"section_00_source_test_anomaly_0003_m-n_W.wav"``.
    machine : str
        Machine type the file belongs to.
    split : str, optional
        ``"train"`` or ``"test"``, from the folder; required for names that do not carry it.

    Raises
    ------
    InputError
        If the name matches none of the layouts.
    """
    if m := _DEV.match(name):
        return Clip(
            Path(name),
            machine,
            m["section"],
            m["split"],
            m["domain"],
            m["label"],
            m["attrs"] or "",
            "dcase2021+",
        )
    if m := _ANON.match(name):
        return Clip(
            Path(name), machine, m["section"], split or "test", None, None, "", "anonymized"
        )
    if m := _DEV2020.match(name):
        return Clip(
            Path(name), machine, m["section"], split or "test", None, m["label"], "", "dcase2020"
        )
    if m := _ANON2020.match(name):
        return Clip(
            Path(name), machine, m["section"], split or "test", None, None, "", "anonymized2020"
        )
    raise InputError(
        f"{name!r} is not a DCASE Task 2 file name",
        help="expected section_XX_<domain>_<split>_<label>_NNNN[_attrs].wav, section_XX_NNNN.wav, "
        "<label>_id_XX_NNNNNNNN.wav or id_XX_NNNNNNNN.wav",
    )


#: ``(machine, file name) -> (label, domain)`` with label in LABELS and domain in DOMAINS or None.
GroundTruth = Mapping[tuple[str, str], tuple[str, str | None]]


def _read_01_csv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) < 2 or row[1].strip() not in ("0", "1"):
                raise DatasetError(
                    f"{path}:{lineno}: expected '<file>,<0|1>', got {','.join(row)!r}",
                    help="ground-truth files use the official evaluator's format",
                )
            out[row[0].strip()] = int(row[1])
    return out


def read_ground_truth(root: str | Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    """Read official ground truth: the 2022–2025 CSV folders or the 2020 ``eval_data_list.csv``.

    Parameters
    ----------
    root : path
        A folder holding ``ground_truth_data/`` (and ``ground_truth_domain/``), or
        ``eval_data_list.csv``, or that CSV file itself.

    Returns
    -------
    dict
        ``(machine, file name) -> (label, domain)``.
    """
    root = Path(root)
    if root.is_file() or (root / "eval_data_list.csv").is_file():
        return _read_eval_data_list(root if root.is_file() else root / "eval_data_list.csv")
    data_dir, dom_dir = root / "ground_truth_data", root / "ground_truth_domain"
    files = sorted(data_dir.glob("ground_truth_*_section_*_test.csv"))
    if not files:
        raise DatasetError(
            f"no ground truth in {root}",
            help="pass the folder holding ground_truth_data/ and ground_truth_domain/ "
            "(or eval_data_list.csv for DCASE 2020)",
        )
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    for path in files:
        machine = re.fullmatch(r"ground_truth_(.+)_section_\d\d_test\.csv", path.name)[1]
        labels = _read_01_csv(path)
        dom_path = dom_dir / path.name
        domains = _read_01_csv(dom_path) if dom_path.is_file() else {}
        if domains and set(domains) != set(labels):
            raise DatasetError(
                f"{dom_path} and {path} list different files",
                help="use the ground-truth files of the same evaluator release",
            )
        for name, lab in labels.items():
            dom = DOMAINS[domains[name]] if name in domains else None
            out[(machine, name)] = (LABELS[lab], dom)
    return out


def _read_eval_data_list(path: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    machine = None
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip():
                continue
            if len(row) == 1:
                machine = row[0].strip()
                continue
            if machine is None or len(row) < 3 or row[2].strip() not in ("0", "1", "0.0", "1.0"):
                raise DatasetError(
                    f"{path}:{lineno}: unexpected row {','.join(row)!r}",
                    help="expected the DCASE 2020 evaluator's eval_data_list.csv",
                )
            out[(machine, row[0].strip())] = (LABELS[int(float(row[2]))], None)
    return out


def apply_ground_truth(clips: Iterable[Clip], truth: GroundTruth) -> list[Clip]:
    """Fill in label and domain of clips listed in ``truth`` (others unchanged)."""
    out = []
    for c in clips:
        hit = truth.get((c.machine, c.name))
        if hit is not None:
            c = replace(c, label=hit[0], domain=hit[1] if hit[1] is not None else c.domain)
        out.append(c)
    return out


def scan_dataset(root: str | Path, ground_truth: str | Path | None = None) -> list[Clip]:
    """Every DCASE clip under ``root``, sorted by machine, section, split and name.

    Parameters
    ----------
    root : path
        A machine folder's parent (or any folder above it).
    ground_truth : path, optional
        See :func:`read_ground_truth`; fills in anonymized test clips.

    Raises
    ------
    DatasetError
        If ``root`` holds no clip in a DCASE layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist", help="check --data")
    clips = []
    for path in sorted(root.rglob("*.wav")):
        split = _SPLIT_DIRS.get(path.parent.name)
        if split is None:
            continue
        try:
            c = parse_clip_name(path.name, path.parent.parent.name, split)
        except InputError:
            continue
        clips.append(replace(c, path=path))
    if not clips:
        raise DatasetError(
            f"no DCASE-layout clips under {root}",
            help="expected <machine>/train/*.wav and <machine>/test/*.wav with DCASE file names",
        )
    if ground_truth is not None:
        clips = apply_ground_truth(clips, read_ground_truth(ground_truth))
    clips.sort(key=lambda c: (c.machine, c.section, c.split, c.name))
    return clips


def group_sections(clips: Iterable[Clip]) -> dict[tuple[str, str], list[Clip]]:
    """Clips grouped by (machine, section), in sorted order."""
    out: dict[tuple[str, str], list[Clip]] = {}
    for c in clips:
        out.setdefault((c.machine, c.section), []).append(c)
    return dict(sorted(out.items()))
