"""A trainable Direct-ACT rebuilt from the shipped fp32 ONNX file computes the same embeddings."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgeasd.audio.io import read_audio
from edgeasd.embedding.models import MODELS_DIR
from edgeasd.errors import ModelError
from edgeasd.train.from_onnx import directact_from_onnx

FP32 = MODELS_DIR / "edgeasd-directact-v2.onnx"


def real_windows(shared_data, n_types: int = 3) -> np.ndarray:
    """One normal and one anomalous 10 s window of ``n_types`` machine types, (2n, 160000)."""
    root = shared_data / "real-clips"
    if not root.is_dir():
        pytest.skip(f"no real clips at {root}")
    files = []
    for machine in ("ToyCar", "fan", "valve")[:n_types]:
        for label in ("normal", "anomaly"):
            files.append(sorted((root / machine / label).glob("*.wav"))[0])
    return np.stack([np.resize(read_audio(f, 16000).samples, 160000) for f in files]).astype(
        np.float32
    )


def test_torch_forward_matches_onnxruntime_on_real_windows(shared_data):
    x = real_windows(shared_data)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    expected = ort.InferenceSession(str(FP32), options).run(None, {"waveform": x})[0]
    net = directact_from_onnx(FP32)
    assert not net.training
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    cos = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert np.all(cos > 1 - 1e-4), cos
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # The windows differ from one another: the comparison is not between constant outputs.
    assert np.min(1 - expected @ expected.T + 2 * np.eye(len(x))) > 1e-3


def test_every_parameter_is_trainable_and_gets_a_gradient(shared_data):
    x = torch.from_numpy(real_windows(shared_data, n_types=1))
    net = directact_from_onnx(FP32)
    net(x).sum().backward()
    params = dict(net.named_parameters())
    assert all(p.requires_grad for p in params.values())
    # The restored batch norms of folded layers are ordinary parameters of the network.
    for name in (
        "spectrum.dense.1.bias",
        "spectrogram.stem.1.bias",
        "spectrogram.blocks.0.bn2.bias",
    ):
        assert params[name].grad is not None and torch.any(params[name].grad != 0), name


@pytest.mark.parametrize("name", ["edgeasd-directact-v2-int8.onnx", "edgeasd-spectral-v1.onnx"])
def test_other_models_are_refused_with_what_to_give(name):
    with pytest.raises(ModelError, match="not an fp32 Direct-ACT export") as err:
        directact_from_onnx(MODELS_DIR / name)
    assert "edgeasd-directact-v2.onnx" in (err.value.help or "")


def test_unreadable_file_is_a_model_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        directact_from_onnx(bad)
