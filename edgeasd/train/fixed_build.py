"""Build the shipped files of a fixed (untrained) spectral model: fp32 ONNX, then its int8 copy.

Shared by :mod:`edgeasd.train.spectral_v2` and :mod:`edgeasd.train.spectral_v3`. Both builds
are deterministic (fixed matrices, no random numbers, no calibration data), so a rebuild from
any folder gives the same bytes, and so the same model id.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch

from edgeasd.errors import ModelError
from edgeasd.train.metadata import ModelMetadata


def export_fp32(module: torch.nn.Module, meta: ModelMetadata, out: str | Path) -> Path:
    """Export ``module`` with ``meta`` to ``out`` and return the path.

    Without the exporter's source trace (:func:`~edgeasd.train.metadata.drop_source_trace`):
    the file, and so its model id, does not depend on where or from which lines it is built.
    """
    import onnx

    from edgeasd.train.export import export_onnx
    from edgeasd.train.metadata import drop_source_trace, save_model

    model = onnx.load(str(export_onnx(module, out, meta)))
    drop_source_trace(model)
    return save_model(model, out)


def int8_copy(
    fp32: str | Path, out: str | Path, meta: ModelMetadata, matrices: list[str], builder: str
) -> Path:
    """The int8 copy of the float model at ``fp32``: its feature ``matrices`` stored as int8.

    Weight-only QDQ (:mod:`edgeasd.train.weight_only`, and why activations stay float).

    Parameters
    ----------
    fp32 : path of the float file.
    out : path of the int8 file to write.
    meta : the int8 file's metadata.
    matrices : names of the constant matrices that must convert (sorted), no more, no fewer.
    builder : the module whose ``python -m`` builds the float file (named in the error).

    Raises
    ------
    ModelError
        If the converted matrices are not exactly ``matrices`` (a float file of another build).
    """
    import onnx

    from edgeasd.train.metadata import save_model, set_metadata
    from edgeasd.train.weight_only import matmul_constants_int8

    model = onnx.load(str(fp32))
    converted = matmul_constants_int8(model)
    if sorted(converted) != matrices:
        raise ModelError(
            f"{fp32}: expected the feature matrices {matrices} to convert to int8, got {converted}",
            help=f"build the float file with `python -m {builder}`",
        )
    set_metadata(model, meta)
    return save_model(model, out)


def main(argv: list[str] | None, builder: str, stem: str, description: str) -> int:
    """Command-line entry point of a builder module: ``python -m BUILDER [--out-dir DIR]``.

    Writes ``STEM.onnx`` and ``STEM-int8.onnx`` (default: the package's models folder) with
    the builder module's ``build_fp32`` and ``build_int8``, and prints their paths.
    """
    from edgeasd.embedding.models import MODELS_DIR

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    # the package's module, also under ``python -m``: the exported graph names the module
    # class by its import path, so the file is byte-identical however it is built
    this = importlib.import_module(builder)
    fp32 = this.build_fp32(args.out_dir / f"{stem}.onnx")
    print(fp32)
    print(this.build_int8(fp32, args.out_dir / f"{stem}-int8.onnx"))
    return 0
