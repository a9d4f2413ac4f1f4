"""From a training checkpoint to deployable ONNX files: fp32 export and int8 quantization.

``edgeasd export`` calls :func:`export_checkpoint`: it rebuilds the trained network,
exports it with the front-end included, quantizes it with calibration windows drawn from
the training data (or a folder given by the user), and writes both files with their
``metadata_props``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgeasd.train.export import export_onnx
from edgeasd.train.metadata import ModelMetadata
from edgeasd.train.quantize import quantize_file
from edgeasd.train.trainer import load_checkpoint, network_from_checkpoint

log = logging.getLogger(__name__)


def training_summary(state: dict) -> str:
    """One-line ``training_data`` metadata from a checkpoint."""
    tc = state.get("train_config", {})
    faults = f" + anomalies of {Path(tc['fault_data']).name}" if tc.get("fault_data") else ""
    loss = tc.get("loss", "adaproj")
    loss = (
        f"; sub-cluster AdaCos loss ({tc.get('n_subclusters')} centres)"
        if loss == "subcluster"
        else ""
    )
    return (
        f"{state.get('n_clips', '?')} clips of {','.join(state.get('machines', []))} "
        f"from {Path(tc.get('data', '?')).name}{faults}; {len(state['classes'])} classes; "
        f"{state['step']} steps{loss}"
    )


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    name: str = "edgeasd-directact",
    version: str = "v1",
    calibration_data: str | Path | None = None,
    n_calibration: int = 32,
) -> tuple[Path, Path]:
    """Export a checkpoint to ``<name>-<version>.onnx`` and ``<name>-<version>-int8.onnx``.

    Parameters
    ----------
    checkpoint : path-like
        ``checkpoint.pt`` or its run folder.
    out_dir : path-like
        Folder for both files.
    name, version : str
        ``model_name`` and ``model_version`` (the int8 file gets ``<version>-int8``).
    calibration_data : path-like, optional
        DCASE-layout folder to draw calibration windows from (default: the training data).
    n_calibration : int
        Number of calibration windows.

    Returns
    -------
    (fp32_path, int8_path)
    """
    state = load_checkpoint(checkpoint)
    net = network_from_checkpoint(state)
    cfg = net.cfg
    meta = ModelMetadata(
        sample_rate=cfg.sample_rate,
        window_seconds=cfg.window_seconds,
        embedding_dim=cfg.embedding_dim,
        model_name=name,
        model_version=version,
        training_data=training_summary(state),
    )
    out_dir = Path(out_dir)
    fp32 = export_onnx(net, out_dir / f"{name}-{version}.onnx", meta)
    data = calibration_data or state["train_config"]["data"]
    int8 = quantize_file(fp32, out_dir / f"{name}-{version}-int8.onnx", data, n_calibration)
    return fp32, int8
