"""The ONNX embedder: metadata, input checks, output checks, and the test model itself."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.onnx_models import machine_sound, make_test_model

from edgeasd.embedding.onnx import REQUIRED_METADATA, Embedder, ModelInfo, read_model_info
from edgeasd.errors import InputError, ModelError


def _reference_embedding(x: np.ndarray, sample_rate: int, dim: int, frame: int = 256):
    """Plain-numpy version of the test model's graph (rfft instead of a DFT matrix)."""
    from support.onnx_models import _band_matrix

    n_frames = x.shape[1] // frame
    frames = x[:, : n_frames * frame].reshape(x.shape[0], n_frames, frame).astype(np.float64)
    hann = np.hanning(frame + 2)[1:-1]
    power = np.abs(np.fft.rfft(frames * hann, axis=-1)) ** 2
    bands = power.mean(axis=1) @ _band_matrix(frame // 2 + 1, dim, sample_rate)
    logs = np.log(bands + 1e-10)
    return logs - logs.mean(axis=1, keepdims=True)


def test_info_from_metadata(test_model):
    emb = Embedder(test_model)
    info = emb.info
    assert (info.sample_rate, info.window_seconds, info.dim, info.metric) == (
        16000,
        0.5,
        16,
        "cosine",
    )
    assert info.name == "test-spectral" and info.version == "1"
    digest = hashlib.sha256(test_model.read_bytes()).hexdigest()
    assert info.sha256 == digest
    assert info.id == f"test-spectral-1:{digest[:16]}"
    assert emb.window_samples == info.window_samples == 8000
    d = info.to_dict()
    assert d["id"] == info.id and d["window_samples"] == 8000
    assert read_model_info(test_model) == info


def test_model_id_changes_with_content(tmp_path):
    a = Embedder(make_test_model(tmp_path / "a.onnx", window_seconds=0.5)).info
    b = Embedder(make_test_model(tmp_path / "b.onnx", window_seconds=0.5, dim=8)).info
    assert a.id != b.id and a.id.split(":")[0] == b.id.split(":")[0]


def test_embedding_matches_numpy_reference(test_model):
    emb = Embedder(test_model, threads=2)
    x = np.stack([machine_sound(0.5, seed=s, anomalous=s % 2 == 1) for s in range(4)])
    y = emb.embed(x)
    assert y.shape == (4, 16) and y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_allclose(y, _reference_embedding(x, 16000, 16), atol=2e-3, rtol=1e-3)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_batch_rows_are_independent(test_model, b, seed):
    emb = _cached(test_model)
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, (b, 8000)).astype(np.float32)
    whole = emb.embed(x)
    rows = np.concatenate([emb.embed(x[i : i + 1]) for i in range(b)])
    np.testing.assert_allclose(whole, rows, atol=1e-4)


_EMBEDDERS: dict = {}


def _cached(path):
    if path not in _EMBEDDERS:
        _EMBEDDERS[path] = Embedder(path)
    return _EMBEDDERS[path]


def test_normal_and_anomalous_sounds_separate(test_model):
    emb = Embedder(test_model)
    normal = emb.embed(np.stack([machine_sound(0.5, seed=s) for s in range(6)]))
    faulty = emb.embed(np.stack([machine_sound(0.5, seed=s, anomalous=True) for s in range(3)]))
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    within = 0.5 * (1 - unit(normal) @ unit(normal).T)
    across = 0.5 * (1 - unit(faulty) @ unit(normal).T)
    assert across.min() > 20 * within.max()


def test_fixed_batch_model_is_chunked(tmp_path):
    path = make_test_model(tmp_path / "b1.onnx", window_seconds=0.25, batch=1)
    x = np.stack([machine_sound(0.25, seed=s) for s in range(3)])
    y = Embedder(path).embed(x)
    np.testing.assert_allclose(y, _reference_embedding(x, 16000, 16), atol=2e-3, rtol=1e-3)


def test_bad_windows_are_input_errors(test_model):
    emb = _cached(test_model)
    with pytest.raises(InputError, match="takes 8000"):
        emb.embed(np.zeros((2, 7999), np.float32))
    with pytest.raises(InputError, match=r"\(batch, samples\)"):
        emb.embed(np.zeros(8000, np.float32))
    bad = np.zeros((1, 8000), np.float32)
    bad[0, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        emb.embed(bad)
    with pytest.raises(InputError, match="numeric"):
        emb.embed(np.array([["a"] * 8000]))
    assert emb.embed(np.zeros((0, 8000))).shape == (0, 16)
    assert emb.embed(np.zeros((1, 8000), np.float64) + 0.1).dtype == np.float32


def test_nan_output_is_a_model_error(tmp_path):
    emb = Embedder(make_test_model(tmp_path / "nan.onnx", window_seconds=0.25, nan_output=True))
    with pytest.raises(ModelError, match=r"test-spectral-1:.*NaN"):
        emb.embed(machine_sound(0.25)[None])


@pytest.mark.parametrize("key", REQUIRED_METADATA)
def test_missing_metadata_names_key_and_file(tmp_path, key):
    path = make_test_model(tmp_path / "m.onnx", window_seconds=0.25, metadata={key: None})
    with pytest.raises(ModelError) as info:
        Embedder(path)
    assert f"'{key}'" in info.value.message and str(path) in info.value.message
    assert info.value.help


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sample_rate", "16k"),
        ("sample_rate", "0"),
        ("window_seconds", "nan"),
        ("window_seconds", "-1"),
        ("embedding_dim", "x"),
        ("metric", "manhattan"),
        ("model_name", " "),
    ],
)
def test_invalid_metadata_names_key_and_file(tmp_path, key, value):
    path = make_test_model(tmp_path / "m.onnx", window_seconds=0.25, metadata={key: value})
    with pytest.raises(ModelError) as info:
        Embedder(path)
    assert f"'{key}'" in info.value.message and str(path) in info.value.message


def test_metadata_disagreeing_with_graph(tmp_path):
    path = make_test_model(
        tmp_path / "w.onnx", window_seconds=0.25, metadata={"sample_rate": "8000"}
    )
    with pytest.raises(ModelError, match="takes 4000 samples"):
        Embedder(path)
    path = make_test_model(
        tmp_path / "d.onnx", window_seconds=0.25, metadata={"embedding_dim": "8"}
    )
    with pytest.raises(ModelError, match="returned shape"):
        Embedder(path).embed(np.zeros((1, 4000), np.float32) + 0.1)


def test_unreadable_and_non_onnx_files(tmp_path):
    with pytest.raises(ModelError, match="cannot read model file"):
        Embedder(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ModelError, match="cannot load model"):
        Embedder(junk)
    with pytest.raises(InputError):
        Embedder(junk, threads=0)


def test_model_info_is_frozen():
    info = ModelInfo("m", "1", 16000, 1.0, 4, "cosine", "", "ab" * 32)
    with pytest.raises(AttributeError):
        info.dim = 5  # type: ignore[misc]
