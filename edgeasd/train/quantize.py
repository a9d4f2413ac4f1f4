"""Static int8 quantization (QDQ) of an exported model, calibrated on real windows.

Dynamic quantization of this CNN was slower than fp32 (the activations are re-scaled at
run time), so edgeasd quantizes statically: onnxruntime runs the fp32 model on a few
dozen calibration windows, records the range of every activation, and inserts
QuantizeLinear/DequantizeLinear pairs around the **2-D convolutions** (per-channel int8
weights, uint8 activations): the spectrogram ResNet, where nearly all of the model's
multiply-adds are. Everything else stays float (:func:`float_nodes`):

* the feature front-end (Fourier matrix products, magnitudes, ``log1p``, mean
  subtraction) and the first convolution of each branch: a spectrum spans many orders
  of magnitude, which 8 bits cannot hold, and onnxruntime's int8 convolution with one
  input channel is slower than the float one;
* the 1-D convolutions over the long-term spectrum and all dense layers: they cost
  little, and quantized they lost precision. Measured on a trained width-16 Direct-ACT
  (16 held-out clips, fp32 vs int8 embedding cosine): everything but the front-end
  quantized, mean 0.9973 (below the 0.999 goal); the 2-D convolutions only, 0.9997.

The int8 weights use 7 bits (``reduce_range``, values in [-64, 64]). On x86-64 CPUs
without VNNI (AVX2 only: AMD Zen 1-3, most Intel Core before Ice Lake), onnxruntime's
u8×s8 convolution kernel sums pairs of products in 16 bits (``vpmaddubsw``), which
saturates when both operands are large: the computed model then differs from the QDQ
graph. Measured on an AVX2-only AMD EPYC with onnxruntime 1.30-1.32 (fp32 vs int8
embedding cosine): the tiny test model, mean 0.9956 with 8-bit weights vs 0.99960 with
7-bit; the shipped width-16 Direct-ACT, 0.954 vs 0.99933. With VNNI there is no
saturation, and 7-bit weights cost little there (the same tiny model, computed without
the fused kernels: 0.99983 with 8-bit, 0.99960 with 7-bit).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from edgeasd.errors import InputError
from edgeasd.evaluation.datasets import Clip
from edgeasd.train.data import fit_length, load_clip, scan
from edgeasd.train.metadata import ModelMetadata, metadata_of, save_model, set_metadata

log = logging.getLogger(__name__)

#: Operators quantized to int8 (those not excluded by :func:`float_nodes`).
QUANTIZED_OPS = ("Conv",)


def single_channel_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the convolutions that read a single input channel (the first layers).

    onnxruntime's int8 convolution is slower than fp32 for one input channel and a long
    kernel (measured here: 4.7 ms vs 1.5 ms for the first layer of a width-16 network),
    and the first layer is the one most sensitive to quantization.
    """
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            shape = shapes.get(node.input[1])
            if shape is not None and len(shape) > 1 and shape[1] == 1:
                names.append(node.name)
    return names


def front_end_nodes(model: onnx.ModelProto) -> list[str]:
    """The first convolution of each branch and every node upstream of it (the features).

    The front-end (Fourier matrix products, magnitudes, ``log1p``, mean subtraction)
    stays in float: its intermediate values span many orders of magnitude.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    by_name = {node.name: node for node in model.graph.node}
    todo = [by_name[n] for n in single_channel_convs(model)]
    seen: dict[str, onnx.NodeProto] = {}
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        todo.extend(producer[i] for i in node.input if i in producer)
    return list(seen)


def one_d_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the convolutions with 1-D kernels (weights of shape (out, in, k))."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Conv" and len(shapes.get(node.input[1], ())) == 3
    ]


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes kept in float: the front-end (:func:`front_end_nodes`) and the 1-D convs."""
    return sorted({*front_end_nodes(model), *one_d_convs(model)})


def store_weights_int8(model: onnx.ModelProto, nodes: Sequence[str], min_size: int = 65536) -> int:
    """Store the large float weights of ``nodes`` as int8 (weight-only quantization).

    Each weight initializer of at least ``min_size`` elements feeding a ``Conv`` or
    ``Gemm`` among ``nodes`` is replaced by symmetric per-output-channel int8 values
    and a ``DequantizeLinear`` node: the layer still computes in float (its precision
    loss is the weight rounding alone, relative ~1/254), while the file stores a
    quarter of the bytes. Modifies ``model`` in place.

    Returns
    -------
    int
        Number of weights converted.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    wanted = set(nodes)
    new_nodes, done = [], 0
    for node in model.graph.node:
        if node.name in wanted and node.op_type in ("Conv", "Gemm") and len(node.input) > 1:
            init = inits.get(node.input[1])
            # A Gemm without transB stores (in, out): axis 0 is not the output channel.
            in_by_out = node.op_type == "Gemm" and not any(
                a.name == "transB" and a.i == 1 for a in node.attribute
            )
            if init is not None and np.prod(init.dims) >= min_size and not in_by_out:
                w = numpy_helper.to_array(init).astype(np.float32)
                peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
                scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
                shape = (-1,) + (1,) * (w.ndim - 1)
                q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
                name = init.name
                model.graph.initializer.remove(init)
                model.graph.initializer.extend(
                    [
                        numpy_helper.from_array(q, f"{name}_int8"),
                        numpy_helper.from_array(scale, f"{name}_scale"),
                        numpy_helper.from_array(np.zeros(q.shape[0], np.int8), f"{name}_zero"),
                    ]
                )
                new_nodes.append(
                    helper.make_node(
                        "DequantizeLinear",
                        [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                        [name],
                        name=f"{name}_weight_only_dq",
                        axis=0,
                    )
                )
                done += 1
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return done


class _WindowReader:
    """onnxruntime ``CalibrationDataReader`` over an array of windows, a few at a time."""

    def __init__(self, windows: np.ndarray, batch: int = 4) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [windows[i : i + batch] for i in range(0, len(windows), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._batches, None)
        return None if chunk is None else {"waveform": chunk}

    def rewind(self) -> None:  # pragma: no cover - onnxruntime API, unused here
        raise NotImplementedError


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: np.ndarray,
    metadata: ModelMetadata,
    exclude_ops: Sequence[str] = (),
    method: str = "minmax",
    reduce_range: bool = True,
) -> Path:
    """Write a static QDQ int8 copy of an fp32 edgeasd model.

    Parameters
    ----------
    fp32_path : path-like
        The exported fp32 model.
    out_path : path-like
        Where the int8 model goes (replaced atomically).
    calibration : numpy.ndarray, shape (n, samples), float32
        Calibration windows at the model's rate and window length (16–64 typical).
    metadata : ModelMetadata
        Written to the int8 file (usually with a ``-int8`` model version).
    exclude_ops : sequence of str
        Node names left in fp32.
    method : {"minmax", "percentile", "entropy"}
        How activation ranges are taken from the calibration windows.
    reduce_range : bool
        7-bit weights, so that onnxruntime's int8 kernels on x86-64 CPUs without VNNI
        do not saturate (see the module docstring). Leave it on unless every target CPU
        has VNNI (or is ARM).

    Returns
    -------
    pathlib.Path
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if calibration.ndim != 2 or len(calibration) == 0:
        raise InputError(f"calibration must be (n, samples) with n > 0, got {calibration.shape}")
    if calibration.shape[1] != metadata.window_samples:
        raise InputError(
            f"calibration windows have {calibration.shape[1]} samples, the model takes "
            f"{metadata.window_samples}"
        )
    with tempfile.TemporaryDirectory(prefix="edgeasd-quant-") as tmp:
        tmp_out, prepped = Path(tmp) / "int8.onnx", Path(tmp) / "prepped.onnx"
        # Fold batch norms into convolutions and fix shapes first, so that each conv is
        # quantized with its folded weights (otherwise the norms run in float after it).
        quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
        kept_float = float_nodes(onnx.load(str(prepped)))
        excluded = [*exclude_ops, *kept_float]
        quantize_static(
            str(prepped),
            str(tmp_out),
            _WindowReader(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
            extra_options={"CalibTensorRangeSymmetric": False},
            reduce_range=reduce_range,
        )
        model = onnx.load(str(tmp_out))
    dense = [n.name for n in model.graph.node if n.op_type == "Gemm"]
    store_weights_int8(model, [*kept_float, *dense])
    set_metadata(model, metadata)
    log.info("quantized %s → %s", fp32_path, out_path)
    return save_model(model, out_path)


def calibration_windows(
    clips: list[Clip], sample_rate: int, window_samples: int, n: int = 32, seed: int = 1
) -> np.ndarray:
    """``n`` windows from randomly chosen clips, spread over machine types.

    Returns
    -------
    numpy.ndarray, shape (min(n, len(clips)), window_samples), float32
    """
    if not clips:
        raise InputError("no clips to calibrate the int8 model with")
    rng = np.random.default_rng(seed)
    by_machine: dict[str, list[Clip]] = {}
    for c in clips:
        by_machine.setdefault(c.machine, []).append(c)
    picked: list[Clip] = []
    pools = [list(rng.permutation(v)) for v in by_machine.values()]
    while len(picked) < min(n, len(clips)):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return np.stack(
        [fit_length(load_clip(c.path, sample_rate), window_samples) for c in picked]
    ).astype(np.float32)


def quantize_file(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration_data: str | os.PathLike,
    n_windows: int = 32,
) -> Path:
    """Quantize an exported edgeasd model with windows of a dataset's training clips.

    The int8 file keeps the fp32 file's metadata with ``-int8`` appended to the version.

    Parameters
    ----------
    fp32_path, out_path : path-like
        Input fp32 model and output int8 model.
    calibration_data : path-like
        DCASE-layout folder; ``n_windows`` of its ``train`` clips are used.
    n_windows : int
        Calibration windows.
    """
    meta = metadata_of(fp32_path)
    clips = scan(calibration_data, "train")
    windows = calibration_windows(clips, meta.sample_rate, meta.window_samples, n_windows)
    int8_meta = replace(meta, model_version=f"{meta.model_version}-int8")
    return quantize_int8(fp32_path, out_path, windows, int8_meta)
