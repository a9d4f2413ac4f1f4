"""The shipped (opt-in) spectral-v2 model is what ``python -m edgeasd.train.spectral_v2`` builds."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript  # noqa: F401  (needed by edgeasd.train.export)
import pytest
import torch

from edgeasd.embedding.models import MODELS_DIR, SPECTRAL_V2_FP32_MODEL, SPECTRAL_V2_MODEL
from edgeasd.embedding.onnx import file_sha256
from edgeasd.train.spectral_v2 import (
    BLOCK_WEIGHTS,
    EMBEDDING_DIM,
    SpectralTemporalEmbedding,
    block_dims,
    main,
    modulation_matrices,
)

from .conftest import probe_windows

pytestmark = pytest.mark.train


def test_rebuilt_files_are_the_shipped_ones_and_compute_the_torch_module(tmp_path):
    assert main(["--out-dir", str(tmp_path)]) == 0
    for name in (SPECTRAL_V2_MODEL, SPECTRAL_V2_FP32_MODEL):
        assert file_sha256(tmp_path / name) == file_sha256(MODELS_DIR / name), name
    x = probe_windows()
    with torch.no_grad():
        ref = SpectralTemporalEmbedding()(torch.from_numpy(x)).numpy()
    fp32 = ort.InferenceSession(str(MODELS_DIR / SPECTRAL_V2_FP32_MODEL)).run(None, {"waveform": x})
    assert fp32[0].shape == (3, EMBEDDING_DIM)
    np.testing.assert_allclose(fp32[0], ref, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)
    assert (ref[0] @ ref[1]) < 0.95 and (ref[0] @ ref[2]) < 0.95  # noise, tone, clicks differ


def test_each_block_weighs_its_share_of_the_cosine_distance():
    x = torch.from_numpy(probe_windows())
    model = SpectralTemporalEmbedding().eval()
    with torch.no_grad():
        e = model(x).numpy()
        blocks = {k: v.numpy() for k, v in model.blocks(x).items()}
    dims = {k: d for k, d in block_dims().items() if k in BLOCK_WEIGHTS}
    total, start = sum(BLOCK_WEIGHTS.values()), 0
    distance = 0.0
    for k, d in dims.items():
        part = e[:, start : start + d]
        start += d
        np.testing.assert_allclose(
            np.linalg.norm(part, axis=1), np.sqrt(BLOCK_WEIGHTS[k] / total), rtol=1e-5
        )
        b = blocks[k] / np.linalg.norm(blocks[k], axis=1, keepdims=True)
        distance += BLOCK_WEIGHTS[k] / total * (1 - b[0] @ b[2])
    assert start == e.shape[1]
    assert 1 - e[0] @ e[2] == pytest.approx(distance, rel=1e-4)


def test_modulation_matrices_are_the_dft_and_octave_means():
    n = 311
    cos, sin, bands = modulation_matrices(n)
    x = np.random.default_rng(3).standard_normal((2, n))
    ref = np.fft.rfft(x, axis=1)
    first = 2  # the first bin the block uses
    np.testing.assert_allclose(x @ cos, ref.real[:, first:], atol=1e-9)
    np.testing.assert_allclose(x @ sin, -ref.imag[:, first:], atol=1e-9)
    np.testing.assert_allclose(bands.sum(axis=0), 1.0)
    assert bands.shape == (n // 2 + 1 - first, 6)


def test_digital_silence_gives_a_finite_unit_vector():
    x = np.zeros((2, 160000), np.float32)
    x[1, 16000:17600] = 0.1  # one burst in silence
    for name in (SPECTRAL_V2_MODEL, SPECTRAL_V2_FP32_MODEL):
        y = ort.InferenceSession(str(MODELS_DIR / name)).run(None, {"waveform": x})[0]
        assert np.isfinite(y).all()
        np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)


def test_shipped_files_carry_no_source_path_or_line_numbers():
    """The exporter's per-node trace (this checkout's path, line numbers) is dropped.

    With it, a rebuild from another folder, or after a comment moved a line of
    ``spectral_v2.py``, gave a different file and so a different model id.
    """
    for name in (SPECTRAL_V2_MODEL, SPECTRAL_V2_FP32_MODEL):
        data = (MODELS_DIR / name).read_bytes()
        assert b"spectral_v2.py" not in data and b"stack_trace" not in data, name
        model = onnx.load(str(MODELS_DIR / name))
        assert not any(n.metadata_props or n.doc_string for n in model.graph.node), name
