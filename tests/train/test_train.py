"""Training smoke test, resume, export and int8 parity on a tiny simulated dataset.

One tiny model (2 s windows, width 4) is trained once per module (a few seconds) and
exported once; the tests share it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript  # noqa: F401  (needed by edgeasd.train.export)
import pytest
import soundfile as sf
import torch
from onnx import numpy_helper

from edgeasd.errors import InputError, ModelError
from edgeasd.train.deploy import export_checkpoint
from edgeasd.train.metadata import METADATA_KEYS, metadata_of, read_metadata
from edgeasd.train.trainer import (
    TrainConfig,
    load_checkpoint,
    network_from_checkpoint,
    train,
)

from .conftest import SAMPLE_RATE, tone_clip

pytestmark = pytest.mark.train
TINY_MODEL = {"window_seconds": 2.0, "width": 4, "branch_dim": 32}


def tiny_config(data: Path, out: Path, epochs: float) -> TrainConfig:
    return TrainConfig(
        data=str(data), out=str(out), epochs=epochs, batch_size=8, model=TINY_MODEL, seed=3
    )


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """(run folder, fp32 path, int8 path) of a tiny model trained for 6 epochs."""
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    train(tiny_config(tiny_dataset, out, 6), progress=False)
    fp32, int8 = export_checkpoint(out, out, n_calibration=8)
    return out, fp32, int8


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """Clips never seen in training or calibration, shape (8, 32000)."""
    rng = np.random.default_rng(123)
    return np.stack([tone_clip(f, rng) for f in (140.0, 310.0, 500.0, 790.0) * 2])


def test_training_reduces_the_loss(trained):
    state = load_checkpoint(trained[0])
    steps_per_epoch = 34 // 8
    assert state["step"] == 6 * steps_per_epoch
    losses = np.array(state["losses"])
    assert len(losses) == state["step"] and np.isfinite(losses).all()
    assert losses[-4:].mean() < losses[:4].mean()
    assert state["classes"] == [
        "fan/section_00/rpm_10",
        "fan/section_00/rpm_20",
        "pump/section_00/rpm_10",
        "pump/section_00/rpm_20",
    ]  # target-domain rpm_30 clips have no class


def test_resume_continues_from_the_checkpoint(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset, tmp_path, 1), progress=False)
    first = load_checkpoint(tmp_path)
    train(tiny_config(tiny_dataset, tmp_path, 2), progress=False)
    second = load_checkpoint(tmp_path)
    assert (first["step"], second["step"]) == (4, 8)
    assert second["losses"][:4] == first["losses"]


def test_training_rejects_a_dataset_with_one_class(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", 1)
    one = tmp_path / "one"
    shutil.copytree(tiny_dataset / "fan", one / "fan")
    for f in (one / "fan" / "train").glob("*rpm_20.wav"):
        f.unlink()
    cfg.data = str(one)
    with pytest.raises(InputError, match="class"):
        train(cfg, progress=False)


def test_missing_checkpoint_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="no training checkpoint"):
        load_checkpoint(tmp_path)


class _RunsCode:
    """Unpickling this object calls ``os.makedirs(marker)``: code run from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_checkpoint_holding_a_pickled_object_is_refused(trained, tmp_path):
    """Resume and export refuse it, and the object's code never runs."""
    marker = tmp_path / "code-ran"
    state = load_checkpoint(trained[0])
    state["numpy_rng"] = _RunsCode(marker)
    run = tmp_path / "run"
    run.mkdir()
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(ModelError, match=r"refused .*GLOBAL os\.makedirs"):
        load_checkpoint(run)
    with pytest.raises(ModelError, match="refused"):
        export_checkpoint(run, tmp_path / "out", n_calibration=2)
    cfg = tiny_config(Path(state["train_config"]["data"]), run, 1)
    with pytest.raises(ModelError, match="refused"):
        train(cfg, progress=False)  # resume
    assert not marker.exists()


def test_a_corrupt_checkpoint_is_a_model_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)


def test_exported_model_carries_the_metadata(trained):
    for path in trained[1:]:
        meta = read_metadata(path)
        assert set(METADATA_KEYS) <= set(meta)
        m = metadata_of(path)
        assert (m.sample_rate, m.window_seconds, m.embedding_dim, m.metric) == (
            SAMPLE_RATE,
            2.0,
            64,
            "cosine",
        )
        assert "fan,pump" in m.training_data
    assert metadata_of(trained[2]).model_version == "v1-int8"


def test_onnx_fp32_matches_torch(trained, held_out):
    net = network_from_checkpoint(load_checkpoint(trained[0]))
    with torch.no_grad():
        ref = net(torch.from_numpy(held_out)).numpy()
    got = ort.InferenceSession(str(trained[1])).run(None, {"waveform": held_out})[0]
    assert got.shape == (8, 64)
    assert (ref * got).sum(axis=1).min() >= 0.9999


def test_int8_matches_fp32(trained, held_out):
    fp32 = ort.InferenceSession(str(trained[1])).run(None, {"waveform": held_out})[0]
    int8 = ort.InferenceSession(str(trained[2])).run(None, {"waveform": held_out})[0]
    cos = (fp32 * int8).sum(axis=1) / np.linalg.norm(int8, axis=1)
    assert cos.mean() >= 0.999
    ops = {n.op_type for n in __import__("onnx").load(str(trained[2])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_kernels_compute_the_quantized_graph(trained, held_out):
    """onnxruntime's fused int8 kernels give what the QDQ graph means, on any x86 CPU.

    Without optimizations onnxruntime runs each DequantizeLinear → float op →
    QuantizeLinear as written (exact); with them, fused int8 kernels. On CPUs without
    VNNI those saturate 16-bit pair sums of 8-bit weights (here 8-bit weights gave a
    cosine of 0.9956 between the two), so the weights must use 7 bits.
    """
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exact = ort.InferenceSession(str(trained[2]), plain).run(None, {"waveform": held_out})[0]
    fused = ort.InferenceSession(str(trained[2])).run(None, {"waveform": held_out})[0]
    assert (exact * fused).sum(axis=1).min() >= 0.9999
    model = onnx.load(str(trained[2]))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = [
        inits[n.input[0]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and inits.get(n.input[0], np.zeros(0)).dtype == np.int8  # not int32 biases
        and not n.name.endswith("_weight_only_dq")  # float layers: no int8 kernel
    ]
    assert weights and max(np.abs(w.astype(int)).max() for w in weights) <= 64


def test_embedder_runs_the_exported_model(trained, held_out):
    embed = pytest.importorskip("edgeasd.embedding.onnx")
    e = embed.Embedder(trained[2])
    out = e.embed(held_out[:2])
    assert out.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)


def test_fault_data_adds_one_anomaly_class_per_machine_and_section(tiny_dataset, tmp_path):
    """Fault-aware training: anomalous test clips of --fault-data become extra classes."""
    rng = np.random.default_rng(5)
    faults = tmp_path / "faults"
    for machine, f0 in (("fan", 520.0), ("pump", 150.0)):
        folder = faults / machine / "test"
        folder.mkdir(parents=True)
        for i, (domain, label) in enumerate(
            [("source", "anomaly"), ("target", "anomaly"), ("source", "normal")]
        ):
            clip = tone_clip(f0, rng) + 0.3 * (rng.random(32000) < 0.001)  # clicks
            name = f"section_00_{domain}_test_{label}_{i:04d}_rpm_10.wav"
            sf.write(folder / name, clip.astype(np.float32), SAMPLE_RATE)
    cfg = tiny_config(tiny_dataset, tmp_path / "run", 1)
    cfg.fault_data = str(faults)
    train(cfg, progress=False)
    state = load_checkpoint(tmp_path / "run")
    assert state["n_clips"] == 34 + 4  # the normal test clip is not used
    assert "fan/section_00/anomaly" in state["classes"]
    assert "pump/section_00/anomaly" in state["classes"]
    assert len(state["classes"]) == 6


def test_fault_data_without_anomalies_is_an_input_error(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", 1)
    cfg.fault_data = str(tiny_dataset)  # has no test/ split at all
    with pytest.raises(InputError):
        train(cfg, progress=False)
