"""Model metadata (the ``metadata_props`` contract) and atomic ONNX file writing.

Torch-free, so that quantization and inspection work without the training extra.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgeasd.atomic import write_bytes_atomic
from edgeasd.embedding.onnx import REQUIRED_METADATA
from edgeasd.errors import InputError, ModelError

#: ``metadata_props`` keys every edgeasd model carries (the embedder's contract).
METADATA_KEYS = REQUIRED_METADATA


@dataclass(frozen=True)
class ModelMetadata:
    """What an edgeasd ONNX model declares about itself (see ARCHITECTURE.md)."""

    sample_rate: int
    window_seconds: float
    embedding_dim: int
    model_name: str
    model_version: str
    training_data: str
    metric: str = "cosine"

    def __post_init__(self) -> None:
        if self.metric not in ("cosine", "euclidean"):
            raise InputError(f"metric must be 'cosine' or 'euclidean', got {self.metric!r}")
        if self.sample_rate <= 0 or self.window_seconds <= 0 or self.embedding_dim <= 0:
            raise InputError("sample_rate, window_seconds and embedding_dim must be positive")

    @property
    def window_samples(self) -> int:
        """Samples per window, ``round(sample_rate * window_seconds)``."""
        return round(self.sample_rate * self.window_seconds)

    def as_props(self) -> dict[str, str]:
        """The ``metadata_props`` key/value strings."""
        return {key: str(getattr(self, key)) for key in METADATA_KEYS}


def set_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the edgeasd keys of ``model.metadata_props`` by ``metadata`` (in place)."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update(metadata.as_props())
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def drop_source_trace(model: onnx.ModelProto) -> None:
    """Remove the exporter's per-node debug properties and doc strings (in place).

    torch's ONNX exporter records, on every node, the exporting source file's absolute path
    and line numbers (``pkg.torch.onnx.stack_trace`` and kin): without this, a file built
    from another checkout, or after a comment moved a line, differs byte for byte, and so
    does its model id (the file's hash). Subgraphs are cleaned too.
    """
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        graph.doc_string = ""
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (graph not loaded into memory twice)."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Check ``model`` and write it atomically as one file (no external data)."""
    path = Path(path)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, model.SerializeToString(), 0o644, fsync=False, exact_mode=True)
    return path


def metadata_of(path: str | os.PathLike) -> ModelMetadata:
    """The :class:`ModelMetadata` an edgeasd ONNX file carries.

    Raises
    ------
    ModelError
        When a key is missing or malformed.
    """
    props = read_metadata(path)
    missing = [k for k in METADATA_KEYS if k not in props]
    if missing:
        raise ModelError(
            f"{path} lacks metadata {', '.join(missing)}",
            help="export the model with `edgeasd export`, which writes the metadata",
        )
    try:
        return ModelMetadata(
            sample_rate=int(props["sample_rate"]),
            window_seconds=float(props["window_seconds"]),
            embedding_dim=int(props["embedding_dim"]),
            model_name=props["model_name"],
            model_version=props["model_version"],
            training_data=props["training_data"],
            metric=props["metric"],
        )
    except ValueError as exc:
        raise ModelError(f"{path} has malformed metadata: {exc}", help="re-export it") from exc


def floor_log_inputs(model: onnx.ModelProto, floor: float = 1e-10) -> int:
    """Insert ``Max(x, floor)`` before every float ``Log`` of the main graph (in place).

    A spectrogram frame of digital zeros has zero power: ``Log`` gives -inf and the
    statistics that follow NaN. With the floor, every input at or above ``floor`` gives
    exactly the value it gave before.

    Parameters
    ----------
    model : onnx.ModelProto
    floor : float
        Smallest value reaching a ``Log`` (1e-10: -100 dB below full-scale power).

    Returns
    -------
    int
        Number of ``Log`` nodes floored (already floored ones are left alone).
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    name = "edgeasd_log_floor"
    if not any(init.name == name for init in graph.initializer):
        graph.initializer.append(numpy_helper.from_array(np.array(floor, np.float32), name))
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type == "Log" and node.domain in ("", "ai.onnx"):
            source = producers.get(node.input[0])
            if source is None or source.op_type != "Max" or name not in source.input:
                floored = f"{node.input[0]}_floored"
                nodes.append(helper.make_node("Max", [node.input[0], name], [floored]))
                node.input[0] = floored
                count += 1
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return count
