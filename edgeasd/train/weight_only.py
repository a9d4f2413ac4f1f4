"""Int8 storage of the constant matrices of ``MatMul`` nodes (QDQ weight-only quantization).

The spectral models' matrix products (mel filterbank, modulation DFT, band pooling) take
a constant matrix on one side. :func:`matmul_constants_int8` stores each such matrix as
int8 values with one scale per output row or column behind a ``DequantizeLinear`` node
(the QDQ format): the product computes in float with the rounded weights, so the only loss
is the weight rounding (at most 1/254 of each row's or column's peak).

Why not int8 activations as well (static QDQ, :mod:`edgeasd.train.quantize`): measured on
``edgeasd-spectral-v2`` over the 261 windows of ``../shared/data/real-clips``, quantizing
the log-domain products' inputs to uint8 (one calibrated scale per tensor) gave a mean
fp32-vs-int8 cosine of 0.95 (min 0.82; the modulation block alone 0.50): one scale must
span a valve's clicks and a fan's 0.02-bel level fluctuations, and the mel product's input,
the power spectrum, spans ten orders of magnitude. Weight-only keeps a mean cosine of
1.00000 (min 0.99995).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: Matrices smaller than this stay float (not worth a node).
MIN_ELEMENTS = 64


def matmul_constants_int8(model: onnx.ModelProto, min_elements: int = MIN_ELEMENTS) -> list[str]:
    """Store every 2-D float initializer read by a ``MatMul`` as int8 (in place).

    A matrix on the left of the product (``W @ x``, shape ``(out, in)``) gets one scale per
    row, on the right (``x @ W``, ``(in, out)``) one per column: per output channel either
    way. Symmetric, zero point 0, values in [-127, 127].

    Parameters
    ----------
    model : onnx.ModelProto
    min_elements : int
        Smaller matrices are left in float.

    Returns
    -------
    list of str
        The names of the converted initializers.
    """
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, set[int]] = {}
    others: set[str] = set()
    for node in model.graph.node:
        for pos, name in enumerate(node.input):
            if node.op_type == "MatMul":
                readers.setdefault(name, set()).add(pos)
            else:
                others.add(name)
    nodes, done = [], []
    for name, positions in readers.items():
        init = inits.get(name)
        if init is None or name in others or len(positions) != 1 or len(init.dims) != 2:
            continue
        if init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < min_elements:
            continue
        axis = 0 if positions == {0} else 1  # the output axis of the matrix
        w = numpy_helper.to_array(init).astype(np.float32)
        peak = np.abs(w).max(axis=1 - axis)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        shape = (-1, 1) if axis == 0 else (1, -1)
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        model.graph.initializer.remove(init)
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(q, f"{name}_int8"),
                numpy_helper.from_array(scale, f"{name}_scale"),
                numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}_zero"),
            ]
        )
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                [name],
                name=f"{name}_weight_only_dq",
                axis=axis,
            )
        )
        done.append(name)
    graph_nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([*nodes, *graph_nodes])
    return done
