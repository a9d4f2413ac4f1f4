"""Small, deterministic ONNX embedding models and machine sounds for tests.

:func:`make_test_model` writes an ONNX file that follows the edgeasd model contract
(input ``waveform`` ``(batch, samples)``, output ``embedding`` ``(batch, dim)``,
``metadata_props``) without torch or trained weights. Its embedding is the log energy
of ``dim`` frequency bands of the window, mean-removed (a spectral *shape*, independent
of the level), computed with a fixed real-DFT matrix:

    frames (b, F, L) ─MatMul cos/sin (L, B)─► power (b, F, B) ─mean over F─► (b, B)
    ─MatMul bands (B, dim)─► +eps ─Log─► minus the mean over dim ─► (b, dim)

so a machine hum and the same hum with a whistle on top embed far apart, while two
noisy recordings of the same hum embed close together. :func:`machine_sound` makes such
normal and anomalous signals.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Default metadata of a test model (overridable per key; ``None`` removes a key).
DEFAULT_METADATA = {
    "metric": "cosine",
    "model_name": "test-spectral",
    "model_version": "1",
    "training_data": "none: a fixed log band-energy model for tests",
}


def _band_matrix(n_bins: int, dim: int, sample_rate: int) -> np.ndarray:
    """(n_bins, dim) averaging matrix of ``dim`` log-spaced bands from 50 Hz to Nyquist."""
    freqs = np.linspace(0.0, sample_rate / 2, n_bins)
    edges = np.geomspace(50.0, sample_rate / 2, dim + 1)
    edges[0] = 0.0
    bands = np.zeros((n_bins, dim), dtype=np.float32)
    for j in range(dim):
        inside = (freqs >= edges[j]) & (freqs < edges[j + 1])
        if not inside.any():  # narrower than a bin: take the nearest bin
            inside = np.abs(freqs - 0.5 * (edges[j] + edges[j + 1])) == np.min(
                np.abs(freqs - 0.5 * (edges[j] + edges[j + 1]))
            )
        bands[inside, j] = 1.0 / inside.sum()
    return bands


def make_test_model(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    window_seconds: float = 1.0,
    dim: int = 16,
    *,
    frame: int = 256,
    metadata: dict[str, str | None] | None = None,
    nan_output: bool = False,
    batch: int | None = None,
) -> Path:
    """Write a deterministic spectral-shape embedding model to ``path``.

    Parameters
    ----------
    path : path-like
        Output ``.onnx`` file (parent folders are created).
    sample_rate : int
        Declared sample rate in Hz.
    window_seconds : float
        Declared window length; the input has ``round(sample_rate * window_seconds)``
        samples, which must be at least ``frame``.
    dim : int
        Embedding dimension (number of frequency bands), at most ``frame // 2 + 1``.
    frame : int
        DFT frame length in samples (frames do not overlap; a partial last frame is
        dropped).
    metadata : dict, optional
        Overrides of the metadata written to ``metadata_props`` (values are strings;
        ``None`` removes the key, to test missing-metadata errors).
    nan_output : bool
        Make the model return NaN embeddings (to test the embedder's checks).
    batch : int, optional
        A fixed batch size in the input shape (default: dynamic).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    n = round(sample_rate * window_seconds)
    n_frames = n // frame
    n_bins = frame // 2 + 1
    if n_frames < 1:
        raise ValueError(f"a window of {n} samples is shorter than one frame of {frame}")
    if not 1 <= dim <= n_bins:
        raise ValueError(f"dim must be in [1, {n_bins}] for frame {frame}, got {dim}")
    t = np.arange(frame)[:, None]
    k = np.arange(n_bins)[None, :]
    hann = np.hanning(frame + 2)[1:-1, None]
    cos = (np.cos(2 * np.pi * t * k / frame) * hann).astype(np.float32)
    sin = (np.sin(2 * np.pi * t * k / frame) * hann).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([n_frames * frame], np.int64), "stop"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1, n_frames, frame], np.int64), "frames_shape"),
        numpy_helper.from_array(cos, "dft_cos"),
        numpy_helper.from_array(sin, "dft_sin"),
        numpy_helper.from_array(_band_matrix(n_bins, dim, sample_rate), "bands"),
        numpy_helper.from_array(np.array(1e-10, np.float32), "eps"),
        numpy_helper.from_array(np.array(np.nan if nan_output else 0.0, np.float32), "poison"),
    ]
    nodes = [
        helper.make_node("Slice", ["waveform", "start", "stop", "axis1"], ["cut"]),
        helper.make_node("Reshape", ["cut", "frames_shape"], ["frames"]),
        helper.make_node("MatMul", ["frames", "dft_cos"], ["re"]),
        helper.make_node("MatMul", ["frames", "dft_sin"], ["im"]),
        helper.make_node("Mul", ["re", "re"], ["re2"]),
        helper.make_node("Mul", ["im", "im"], ["im2"]),
        helper.make_node("Add", ["re2", "im2"], ["power"]),
        helper.make_node("ReduceMean", ["power", "axis1"], ["spectrum"], keepdims=0),
        helper.make_node("MatMul", ["spectrum", "bands"], ["band_power"]),
        helper.make_node("Add", ["band_power", "eps"], ["band_power_eps"]),
        helper.make_node("Log", ["band_power_eps"], ["log_bands"]),
        helper.make_node("ReduceMean", ["log_bands", "minus1"], ["level"], keepdims=1),
        helper.make_node("Sub", ["log_bands", "level"], ["shape"]),
        helper.make_node("Add", ["shape", "poison"], ["embedding"]),
    ]
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "minus1"))
    graph = helper.make_graph(
        nodes,
        "edgeasd_test_spectral",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [batch or "batch", n])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch or "batch", dim])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    meta = {
        **DEFAULT_METADATA,
        "sample_rate": str(sample_rate),
        "window_seconds": repr(float(window_seconds)),
        "embedding_dim": str(dim),
    }
    for key, value in (metadata or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def machine_sound(
    seconds: float,
    sample_rate: int = 16000,
    *,
    anomalous: bool = False,
    seed: int = 0,
    level: float = 0.2,
) -> np.ndarray:
    """A simulated machine: a 100 Hz hum with harmonics in noise, optionally a whistle.

    Parameters
    ----------
    seconds : float
        Duration.
    sample_rate : int
        Sample rate in Hz.
    anomalous : bool
        Add a strong 3.1 kHz whistle with a 7 Hz rattle (the "fault").
    seed : int
        Seed of the noise (same seed, same samples).
    level : float
        Peak amplitude scale (well below clipping at the default).

    Returns
    -------
    ndarray, shape (round(seconds * sample_rate),), float32
        Samples in [-1, 1].
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    phase = rng.uniform(0, 2 * np.pi, 4)
    x = sum((0.5 / h) * np.sin(2 * np.pi * 100.0 * h * t + phase[h - 1]) for h in range(1, 5))
    x = x + 0.05 * rng.standard_normal(n)
    if anomalous:
        rattle = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 7.0 * t)))
        x = x + 0.8 * np.sin(2 * np.pi * 3100.0 * t) + 0.3 * rattle * rng.standard_normal(n)
    return (level * x / np.max(np.abs(x))).astype(np.float32)
