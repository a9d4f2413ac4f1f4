"""Folders of links for training on some real machine types and judging on the others.

From a labelled folder with a ``manifest.csv`` (``../shared/data/real-clips``), writes under
OUT, as symbolic links (nothing copied):

* ``train/<machine>/train/section_<id>_source_train_normal_<n>_id_<id>.wav``: the normal
  recordings of the training types in DCASE names (``edgeasd train --data``; machine id =
  section, so the classes are machine type × id);
* ``faults/<machine>/test/section_<id>_source_test_anomaly_<n>_id_<id>.wav``: their anomalous
  recordings (``--fault-data``: one fault class per type and id);
* ``heldout/``: the other types' recordings and their ``manifest.csv`` (``edgeasd eval-real``);
* with ``--with-sim SIM`` (a folder written by ``edgeasd synth``), also
  ``train/sim_<machine>/train/<name>.wav``: SIM's normal ``train/`` clips under their own names,
  so the simulated machines join as their own classes (type × section × attributes) and never
  merge with a real type of the same name.

The fine-tuning rows of MODEL_CARD.md ("Direct-ACT trained on real clips of other machine
types") were made with equivalent folders (the same classes and files under other link
names, so batches differ) and::

    python benchmarks/real_holdout_folders.py OUT_A fan pump ToyCar
    edgeasd train --data OUT_A/train --fault-data OUT_A/faults --out runA --epochs 200 \\
        --max-minutes 10 --batch-size 32 --width 16 --crop-seconds 3 --threads 1 --seed 0
    edgeasd export runA --version ftA
    edgeasd eval-real OUT_A/heldout --model runA/edgeasd-directact-ftA-int8.onnx

and the same with ``OUT_B valve slider ToyConveyor``. The row "real + simulated" was made
with one simulated set shared by both folds (108 clips, 9 types × 12, 7 s to render)::

    edgeasd synth --out SIM --n-source-train 12 --n-target-train 0 --n-test 0 --seed 0
    python benchmarks/real_holdout_folders.py OUT_A fan pump ToyCar --with-sim SIM
    edgeasd train --data OUT_A/train --fault-data OUT_A/faults --out runA --epochs 200 \\
        --max-minutes 12 --batch-size 32 --width 16 --crop-seconds 3 --threads 1 --seed 0

then export and ``eval-real`` as above. The sub-cluster AdaCos rows add ``--loss subcluster``
to that ``edgeasd train`` command.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-clips"


def section(machine_id: str) -> str:
    """Two-digit section of a machine id (``id_04`` -> ``04``; anything else -> ``99``)."""
    digits = machine_id.removeprefix("id_")
    return digits.zfill(2) if digits.isdigit() and len(digits) <= 2 else "99"


def write_folders(source: Path, out: Path, train_types: set[str]) -> dict[str, int]:
    """Write the three folders (module docstring); return how many links each got."""
    with (source / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    counts = {"train": 0, "faults": 0, "heldout": 0}
    held = []
    for n, row in enumerate(rows):
        src = (source / row["file"]).resolve()
        machine, sec = row["machine"], section(row.get("machine_id", ""))
        if machine not in train_types:
            held.append(row)
            link, kind = out / "heldout" / row["file"], "heldout"
        elif row["label"] == "normal":
            name = f"section_{sec}_source_train_normal_{n:04d}_id_{sec}.wav"
            link, kind = out / "train" / machine / "train" / name, "train"
        else:
            name = f"section_{sec}_source_test_anomaly_{n:04d}_id_{sec}.wav"
            link, kind = out / "faults" / machine / "test" / name, "faults"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(src)
        counts[kind] += 1
    with (out / "heldout" / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(held)
    return counts


def link_simulated(sim: Path, out: Path) -> int:
    """Link SIM's normal training clips into ``out/train/sim_<machine>/train``; return the count.

    Raises
    ------
    SystemExit
        When SIM holds no ``<machine>/train/*normal*.wav`` clip.
    """
    count = 0
    for src in sorted(sim.glob("*/train/*.wav")):
        if "_normal_" not in src.name:
            continue
        link = out / "train" / f"sim_{src.parent.parent.name}" / "train" / src.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(src.resolve())
        count += 1
    if not count:
        raise SystemExit(
            f"{sim}: no <machine>/train/*_normal_*.wav clip; write one with edgeasd synth"
        )
    return count


def main(argv: list[str] | None = None) -> int:
    """Command line: ``OUT TYPE... [--source FOLDER] [--with-sim SIM]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("train_types", nargs="+", metavar="TYPE")
    p.add_argument("--source", type=Path, default=DEFAULT_FOLDER)
    p.add_argument("--with-sim", type=Path, metavar="SIM", help="also link SIM's normal clips")
    args = p.parse_args(argv)
    counts = write_folders(args.source, args.out, set(args.train_types))
    if args.with_sim is not None:
        counts["simulated"] = link_simulated(args.with_sim, args.out)
    print(counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
