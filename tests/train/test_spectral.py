"""The shipped spectral model is what ``python -m edgeasd.train.spectral`` builds."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import onnxscript  # noqa: F401  (needed by edgeasd.train.export)
import pytest
import torch

from edgeasd.embedding.models import spectral_model_path
from edgeasd.train.metadata import metadata_of
from edgeasd.train.spectral import EMBEDDING_DIM, SpectralEmbedding, build

pytestmark = pytest.mark.train


def test_rebuilt_spectral_model_matches_the_shipped_file_and_torch(tmp_path):
    rebuilt = build(tmp_path / "spectral.onnx")
    assert metadata_of(rebuilt) == metadata_of(spectral_model_path())
    rng = np.random.default_rng(0)
    t = np.arange(160000) / 16000
    x = np.stack(
        [
            0.1 * rng.standard_normal(160000),
            0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(160000),
        ]
    ).astype(np.float32)
    shipped = ort.InferenceSession(str(spectral_model_path())).run(None, {"waveform": x})[0]
    fresh = ort.InferenceSession(str(rebuilt)).run(None, {"waveform": x})[0]
    with torch.no_grad():
        ref = SpectralEmbedding()(torch.from_numpy(x)).numpy()
    assert shipped.shape == (2, EMBEDDING_DIM)
    np.testing.assert_allclose(fresh, shipped, atol=1e-6)
    np.testing.assert_allclose(shipped, ref, atol=1e-5)
    assert abs(float(shipped[0] @ shipped[1])) < 0.99  # noise and a tone differ


def test_rebuilt_spectral_model_floors_its_logs(tmp_path):
    """Future exports stay finite on digital zeros, as the patched shipped file does."""
    rebuilt = build(tmp_path / "spectral.onnx")
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 160000))).astype(np.float32)
    x[0, 16000:17600] = 0.0  # 0.1 s dropout
    x[1] = 0.0
    for path in (rebuilt, spectral_model_path()):
        y = ort.InferenceSession(str(path)).run(None, {"waveform": x})[0]
        assert np.isfinite(y).all(), path
    with torch.no_grad():
        assert torch.isfinite(SpectralEmbedding()(torch.from_numpy(x))).all()
