"""Confirmation on ``../shared/data/mimii``: does the anomalous clip score above the normal one?

``mimii/`` holds one normal and one abnormal raw 8-channel clip of four MIMII machines (fan
id_02, pump id_02, slider id_04, valve id_04): too few for ``edgeasd eval-real`` (it needs
two normals of a type). This check enrolls the normal recordings of the *same machine
type and id* from ``real-clips`` (channel 0 of other MIMII recordings, one group each) in
the agent's bank (default ``scoring``) and scores the two ``mimii/`` clips, read as the
agent reads a multichannel file (channels averaged). No choice of any model used
``mimii/``. Per machine: the two scores and whether the anomaly ranks above the normal
(one pair: a coin flip for a model that cannot tell; read four such pairs as an anecdote,
not a rate).

Run (``OMP_NUM_THREADS=1``; a few seconds per model)::

    python benchmarks/real_mimii_pairs.py MODEL.onnx [MODEL.onnx ...]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from edgeasd.agent.enrollment.bank_lifecycle import new_bank
from edgeasd.audio.io import read_audio
from edgeasd.config import Config
from edgeasd.embedding.onnx import Embedder
from edgeasd.evaluation.labelled import scan_labelled

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def window(path: Path, embedder: Embedder) -> np.ndarray:
    """The recording's first window (channels averaged), ``(1, samples)`` float32."""
    x = read_audio(path, embedder.info.sample_rate).samples
    return np.resize(x, embedder.window_samples)[None].astype(np.float32)


def main(argv: list[str]) -> int:
    """Print one markdown row per model: per machine, normal / anomalous score."""
    logging.disable(logging.WARNING)
    config = Config()
    refs = scan_labelled(SHARED / "real-clips")
    machines = sorted(p for p in (SHARED / "mimii").glob("*/id_*") if p.is_dir())
    print("| model | " + " | ".join(f"{p.parent.name}/{p.name}" for p in machines) + " | ranked |")
    print("|---|" + "---:|" * (len(machines) + 1))
    for model in argv:
        e = Embedder(model)
        cells, right = [], 0
        for m in machines:
            bank = new_bank(config.scoring, e.info)
            for c in refs:
                if (c.machine, c.machine_id, c.label) == (m.parent.name, m.name, "normal"):
                    bank.enroll(e.embed(window(c.path, e)), group=c.path.stem)
            normal = float(bank.score(e.embed(window(next((m / "normal").glob("*.wav")), e)))[0])
            anomal = float(bank.score(e.embed(window(next((m / "abnormal").glob("*.wav")), e)))[0])
            right += anomal > normal
            cells.append(f"{normal:.2f} / {anomal:.2f} ({len(bank.groups_)} refs)")
        print(f"| {e.info.id} | " + " | ".join(cells) + f" | {right} of {len(machines)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
