"""Export a torch embedding module to one self-contained ONNX file with edgeasd metadata.

The file follows the model contract of ARCHITECTURE.md: input ``waveform`` of shape
``(batch, samples)`` float32 at the model's sample rate, output ``embedding`` of shape
``(batch, dim)``, and ``metadata_props`` with ``sample_rate``, ``window_seconds``,
``embedding_dim``, ``metric``, ``model_name``, ``model_version`` and ``training_data``.
The dynamo exporter is used because the legacy one cannot export ``fft_rfft``.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from edgeasd.errors import InputError, ModelError
from edgeasd.train.metadata import ModelMetadata, save_model, set_metadata

log = logging.getLogger(__name__)


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
    module = module.eval()
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
