"""`benchmarks/real_finetune.py`: classes of a bank's recordings; the base is never trained."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import torch

from edgeasd.evaluation.labelled import LabelledClip
from edgeasd.train.directact import DirectACT, DirectACTConfig

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_finetune.py"
BENCH = runpy.run_path(str(SCRIPT), run_name="real_finetune")


def _clip(name: str, machine_id: str) -> LabelledClip:
    return LabelledClip(Path(name), "fan", machine_id, "normal", None)


def test_classes_are_machine_ids_or_recordings():
    clips = [_clip("a.wav", "id_02"), _clip("b.wav", "id_00"), _clip("c.wav", "id_02")]
    variants = BENCH["VARIANTS"]
    assert BENCH["labels_of"](clips, variants["id"]).tolist() == [1, 0, 1]
    assert BENCH["labels_of"](clips, variants["rec"]).tolist() == [0, 1, 2]
    # One machine id only: each recording is its own class (a loss needs two classes).
    one_id = [_clip("b.wav", "id_00"), _clip("a.wav", "id_00")]
    assert BENCH["labels_of"](one_id, variants["id"]).tolist() == [1, 0]


def test_finetune_trains_a_copy_and_leaves_the_base_for_the_next_fold():
    torch.manual_seed(0)
    base = DirectACT(DirectACTConfig(window_seconds=4.0, width=2, branch_dim=8)).eval()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    rng = np.random.default_rng(0)
    windows = [(0.1 * rng.standard_normal((1, 64000))).astype(np.float32) for _ in range(3)]
    net, cpu_seconds, loss = BENCH["finetune"](
        base, windows, np.array([0, 1, 2]), BENCH["VARIANTS"]["rec"], steps=2
    )
    assert net is not base and not net.training
    assert np.isfinite(loss) and cpu_seconds > 0
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Batch norms keep their statistics (eval mode while training); the weights moved.
    after = net.state_dict()
    assert torch.equal(
        after["spectrogram.freq_norm.running_mean"], before["spectrogram.freq_norm.running_mean"]
    )
    assert not torch.equal(after["spectrum.convs.0.weight"], before["spectrum.convs.0.weight"])
