"""A trainable Direct-ACT rebuilt from an exported fp32 ONNX file (to fine-tune a shipped model).

Only ONNX files of Direct-ACT are shipped, no training checkpoint. Their initializers are the
torch parameters under their torch names, except where the exporter folded a batch norm into
the layer before it (:func:`edgeasd.train.export.fold_batchnorms` for the dense layers, the
ONNX optimizer for a convolution followed by a batch norm):

* ``spectrum.dense.{0,2,4}.weight`` / ``.bias``: ``Linear`` (no bias) + ``BatchNorm1d``
  folded into one layer with a bias; the folded ``Sequential`` has no batch-norm entries, so
  its indices 0, 2, 4, 6 are the network's 0, 3, 6, 9 (batch norms at 1, 4, 7);
* ``spectrogram.stem.0.weight`` / ``.weight_bias``: the stem convolution + ``stem.1``;
* ``spectrogram.blocks.N.conv1.weight`` / ``.weight_bias``: ``conv1`` + ``bn2``.

Each folded pair is restored as the folded weight in the layer and a batch norm that adds the
bias in eval mode (scale 1, mean 0, variance ``1 - eps``): the same function, every parameter
trainable. Fine-tuning should then keep the batch norms in eval mode (their statistics are the
folded ones, not the data's). The configuration (width, branch width) is read from the weight
shapes, the window length from the file's metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from edgeasd.errors import ModelError
from edgeasd.train.directact import DirectACT, DirectACTConfig

#: Folded layers: ONNX weight name pattern and the suffix of its folded bias.
_FOLDED = (
    (re.compile(r"^spectrum\.dense\.[024]\.weight$"), ".bias"),
    (re.compile(r"^spectrogram\.stem\.0\.weight$"), ".weight_bias"),
    (re.compile(r"^spectrogram\.blocks\.\d+\.conv1\.weight$"), ".weight_bias"),
)


def _torch_name(name: str) -> str:
    """The network's name of an ONNX initializer (``spectrum.dense.K`` → ``dense.3K/2``)."""
    m = re.match(r"^spectrum\.dense\.(\d+)\.(.*)$", name)
    if m:
        return f"spectrum.dense.{3 * int(m.group(1)) // 2}.{m.group(2)}"
    return name


def _norm_of(prefix: str, layer: str) -> str:
    """The network's name of the batch norm folded into the layer ``prefix + layer``."""
    if layer == "conv1":
        return prefix + "bn2"
    return prefix + str(int(layer) + 1)


def read_initializers(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The initializers (as float32 tensors) and ``metadata_props`` of an ONNX file."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises several types for a bad file
        raise ModelError(f"cannot read ONNX model {path}: {exc}") from exc
    tensors = {
        i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer
    }
    return tensors, {p.key: p.value for p in model.metadata_props}


def directact_from_onnx(path: str | Path) -> DirectACT:
    """The :class:`DirectACT` (eval mode) whose forward is that of an fp32 ONNX export.

    Parameters
    ----------
    path : path-like
        An fp32 Direct-ACT ONNX file written by ``edgeasd export`` (not the int8 one: its
        weights are quantized and renamed).

    Returns
    -------
    DirectACT
        Its embeddings match onnxruntime's on the file to float32 rounding.

    Raises
    ------
    ModelError
        When the file is not an fp32 Direct-ACT export (a parameter is missing or of another
        shape); the message names it.
    """
    init, meta = read_initializers(path)
    help_ = "give the fp32 Direct-ACT file, e.g. edgeasd-directact-v2.onnx (not -int8)"
    try:
        width = int(init["spectrogram.stem.0.weight"].shape[0])
        branch_dim = int(init["spectrum.dense.6.weight"].shape[0])
    except KeyError as exc:
        raise ModelError(f"{path} is not an fp32 Direct-ACT export: no {exc}", help=help_) from exc
    cfg = DirectACTConfig(
        sample_rate=int(meta.get("sample_rate", 16000)),
        window_seconds=float(meta.get("window_seconds", 10.0)),
        width=width,
        branch_dim=branch_dim,
    )
    net = DirectACT(cfg)
    state = net.state_dict()
    new: dict[str, torch.Tensor] = {}
    for name, value in init.items():
        for pattern, bias_suffix in _FOLDED:
            m = pattern.match(name)
            if m:
                bias = init.get(name[: -len(".weight")] + bias_suffix)
                if bias is None:
                    raise ModelError(f"{path}: {name} has no folded bias", help=help_)
                layer = _torch_name(name)[: -len(".weight")]
                prefix, _, last = layer.rpartition(".")
                norm = _norm_of(prefix + ".", last)
                eps = _eps(net, norm)
                new[layer + ".weight"] = value
                new[norm + ".weight"] = torch.ones_like(bias)
                new[norm + ".bias"] = bias
                new[norm + ".running_mean"] = torch.zeros_like(bias)
                new[norm + ".running_var"] = torch.full_like(bias, 1.0 - eps)
                break
        else:
            if _torch_name(name) in state:
                new[_torch_name(name)] = value
    missing = [k for k in state if k not in new and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(
            f"{path} is not an fp32 Direct-ACT export of this code: "
            f"{len(missing)} parameters missing, e.g. {missing[0]}",
            help=help_,
        )
    for k, v in new.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise ModelError(
                f"{path}: {k} has shape {tuple(v.shape)}, the network expects "
                f"{tuple(state[k].shape)}",
                help=help_,
            )
    net.load_state_dict(new, strict=False)
    return net.eval()


def _eps(net: DirectACT, name: str) -> float:
    """The ``eps`` of the batch norm module called ``name``."""
    module = net.get_submodule(name)
    if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        raise ModelError(f"{name} is not a batch norm in this network")
    return float(module.eps)


__all__ = ["directact_from_onnx", "read_initializers"]
