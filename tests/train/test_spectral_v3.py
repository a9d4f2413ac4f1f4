"""The shipped spectral-v3 model is what ``python -m edgeasd.train.spectral_v3`` builds."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import onnxscript  # noqa: F401  (needed by edgeasd.train.export)
import pytest
import torch

from edgeasd.embedding.models import MODELS_DIR, SPECTRAL_V3_FP32_MODEL, SPECTRAL_V3_MODEL
from edgeasd.embedding.onnx import file_sha256
from edgeasd.train.spectral_v2 import SpectralTemporalEmbedding
from edgeasd.train.spectral_v3 import BLOCKS, EMBEDDING_DIM, SpectralShapeFluxEmbedding, main

from .conftest import probe_windows

pytestmark = pytest.mark.train


def test_rebuilt_files_are_the_shipped_ones_and_compute_the_torch_module(tmp_path):
    assert main(["--out-dir", str(tmp_path)]) == 0
    for name in (SPECTRAL_V3_MODEL, SPECTRAL_V3_FP32_MODEL):
        assert file_sha256(tmp_path / name) == file_sha256(MODELS_DIR / name), name
    x = probe_windows()
    with torch.no_grad():
        ref = SpectralShapeFluxEmbedding()(torch.from_numpy(x)).numpy()
    fp32 = ort.InferenceSession(str(MODELS_DIR / SPECTRAL_V3_FP32_MODEL)).run(None, {"waveform": x})
    assert fp32[0].shape == (3, EMBEDDING_DIM) == (3, 64 + 64 + 513 + 1)
    np.testing.assert_allclose(fp32[0], ref, atol=2e-5)
    assert (ref[0] @ ref[1]) < 0.95 and (ref[0] @ ref[2]) < 0.95  # noise, tone, clicks differ


def test_it_is_v2s_shape_flux_and_spectrum_blocks_with_equal_weights():
    """Reference: v2's own blocks (the features the selection was run on), each L2-normalized
    and scaled by sqrt(1/3), in the order shape, flux, spectrum."""
    x = torch.from_numpy(probe_windows())
    with torch.no_grad():
        e = SpectralShapeFluxEmbedding()(x).numpy()
        v2 = {
            k: v.numpy().astype(np.float64)
            for k, v in SpectralTemporalEmbedding().blocks(x).items()
        }
    assert BLOCKS == ("shape", "flux", "spectrum")
    ref = np.concatenate(
        [v2[k] / np.linalg.norm(v2[k], axis=1, keepdims=True) / np.sqrt(3) for k in BLOCKS], 1
    )
    np.testing.assert_allclose(e[:, :-1], ref, atol=1e-5)
    np.testing.assert_allclose(e[:, -1], 1e-3, rtol=1e-3)  # the silence anchor


def test_digital_silence_gives_a_finite_unit_vector():
    x = np.zeros((2, 160000), np.float32)
    x[1, 16000:17600] = 0.1  # one burst in silence
    for name in (SPECTRAL_V3_MODEL, SPECTRAL_V3_FP32_MODEL):
        y = ort.InferenceSession(str(MODELS_DIR / name)).run(None, {"waveform": x})[0]
        assert np.isfinite(y).all()
        np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
        assert y[0, -1] == pytest.approx(1.0)  # silence: the anchor alone


def test_shipped_files_carry_no_source_path_or_line_numbers():
    for name in (SPECTRAL_V3_MODEL, SPECTRAL_V3_FP32_MODEL):
        data = (MODELS_DIR / name).read_bytes()
        assert b"spectral_v3.py" not in data and b"stack_trace" not in data, name


def test_int8_copy_of_another_builds_float_file_is_refused_by_name(tmp_path) -> None:
    """v2's int8 step given v3's float file (one matrix, not v2's four): a ModelError naming
    the file, the matrices that converted and the command that builds v2's float file; no
    int8 file is written."""
    from edgeasd.errors import ModelError
    from edgeasd.train import spectral_v2

    wrong = MODELS_DIR / "edgeasd-spectral-v3.onnx"
    out = tmp_path / "v2-int8.onnx"
    with pytest.raises(ModelError) as err:
        spectral_v2.build_int8(wrong, out)
    text = str(err.value)
    assert "edgeasd-spectral-v3.onnx" in text and "['filterbank']" in text
    assert "python -m edgeasd.train.spectral_v2" in err.value.help
    assert not out.exists()
