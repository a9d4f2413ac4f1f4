"""Export a torch embedding module to one self-contained ONNX file with edgeasd metadata.

The file follows the model contract of ARCHITECTURE.md: input ``waveform`` of shape
``(batch, samples)`` float32 at the model's sample rate, output ``embedding`` of shape
``(batch, dim)``, and ``metadata_props`` with ``sample_rate``, ``window_seconds``,
``embedding_dim``, ``metric``, ``model_name``, ``model_version`` and ``training_data``.
The exporter first folds each batch norm that follows a dense layer into that layer
(:func:`fold_batchnorms`): the same function in fewer nodes.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path

import torch

from edgeasd.errors import InputError, ModelError
from edgeasd.train.metadata import ModelMetadata, save_model, set_metadata

log = logging.getLogger(__name__)


def fold_batchnorms(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` in eval mode with batch norms folded into the dense layer before.

    Inside every ``nn.Sequential``, a ``BatchNorm1d`` directly after an ``nn.Linear`` is
    merged into it (running statistics; equal to the eval-mode original up to float
    rounding): fewer nodes, and the norm's per-feature scale lands on the weights' output
    channels, which int8 quantizes per channel. A norm *before* a dense layer is left
    alone: folded, its ``1/σ`` would scale the weights' *input* columns, and one int8
    scale per output row resolves that poorly (measured on a trained width-16
    Direct-ACT: int8 vs fp32 cosine 0.984 folded vs 0.997 not).

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        A deep copy; ``module`` is not changed.
    """
    module = copy.deepcopy(module).eval()
    for seq in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        layers, merged = list(seq), []
        while layers:
            a = layers.pop(0)
            b = layers[0] if layers else None
            if isinstance(a, torch.nn.Linear) and _foldable(b):
                merged.append(_fold_linear(a, layers.pop(0)))
            else:
                merged.append(a)
        if len(merged) < len(seq):
            for key in list(seq._modules):
                del seq._modules[key]
            for i, layer in enumerate(merged):
                seq.add_module(str(i), layer)
    return module


def _foldable(m: torch.nn.Module | None) -> bool:
    return isinstance(m, torch.nn.BatchNorm1d) and m.running_var is not None


@torch.no_grad()
def _fold_linear(linear: torch.nn.Linear, norm: torch.nn.BatchNorm1d) -> torch.nn.Linear:
    """One Linear equal to ``norm(linear(x))``: ``s (W x + b) + t``."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    w = linear.weight.double()
    b = linear.bias.double() if linear.bias is not None else torch.zeros(w.shape[0]).double()
    new_w, new_b = scale.double()[:, None] * w, scale.double() * b + shift.double()
    out = torch.nn.Linear(w.shape[1], w.shape[0], bias=True)
    out.weight.copy_(new_w.float())
    out.bias.copy_(new_b.float())
    return out


def export_onnx(
    module: torch.nn.Module,
    path: str | os.PathLike,
    metadata: ModelMetadata,
    *,
    opset: int = 18,
) -> Path:
    """Export ``module`` (waveform → embedding) to a self-contained ONNX file.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a ``(batch, samples)`` float32 waveform to a ``(batch, dim)`` embedding;
        the feature front-end must be part of it.
    path : path-like
        Output ``.onnx`` file, replaced atomically.
    metadata : ModelMetadata
        Written to ``metadata_props``; ``embedding_dim`` must match the module output.
    opset : int
        ONNX opset, at least 18 (STFT and DFT as the exporter emits them).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if opset < 18:
        raise InputError(f"opset must be >= 18, got {opset}")
    module = fold_batchnorms(module)
    example = torch.zeros(2, metadata.window_samples)
    with torch.no_grad():
        out = module(example)
    if out.shape != (2, metadata.embedding_dim):
        raise ModelError(
            f"module output shape {tuple(out.shape)} does not match embedding_dim "
            f"{metadata.embedding_dim}",
            help="set embedding_dim to the width of the module's output",
        )
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            input_names=["waveform"],
            output_names=["embedding"],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.optimize()
    model = program.model_proto
    model.producer_name = "edgeasd"
    set_metadata(model, metadata)
    log.info("exported %s (%d nodes)", path, len(model.graph.node))
    return save_model(model, path)
