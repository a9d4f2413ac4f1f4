"""The embedder: an ONNX model run by onnxruntime on the CPU.

The model contract (ARCHITECTURE.md): input ``waveform`` ``(batch, samples)`` float32 at
the model's sample rate, output ``embedding`` ``(batch, dim)`` float32, and
``metadata_props`` declaring ``sample_rate``, ``window_seconds``, ``embedding_dim``,
``metric``, ``model_name``, ``model_version`` and ``training_data``. The agent reads
these from the file, so model and agent cannot disagree.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.errors import EmbeddingError, InputError, ModelError

#: ``metadata_props`` keys every edgeasd model must carry.
REQUIRED_METADATA = (
    "sample_rate",
    "window_seconds",
    "embedding_dim",
    "metric",
    "model_name",
    "model_version",
    "training_data",
)
#: Optional ``metadata_props`` key listing model ids (comma-separated) whose embeddings this
#: model reproduces on every window the earlier one could embed, so that a bank recorded
#: with one of them stays valid (:func:`edgeasd.model_check.accepts`).
COMPATIBLE_KEY = "compatible_ids"
METRICS = ("cosine", "euclidean")
_EXPORT_HELP = "export the model with edgeasd's exporter (edgeasd.train.export), which writes it"


@dataclass(frozen=True)
class ModelInfo:
    """What a model file declares about itself, plus its content hash.

    Attributes
    ----------
    name, version : str
        ``model_name`` and ``model_version`` from the metadata.
    sample_rate : int
        Audio sample rate the model expects, in Hz.
    window_seconds : float
        Length of one input window in seconds.
    dim : int
        Embedding dimension.
    metric : str
        ``"cosine"`` or ``"euclidean"``: how embeddings are compared.
    training_data : str
        Free-text description of the training data.
    sha256 : str
        Hex SHA-256 of the model file (of an ensemble: of its members' hashes).
    members : tuple of str
        The member models' ids of an ensemble (``edgeasd.embedding.ensemble``); empty for one model.
    compatible : tuple of str
        Ids of earlier files of this model whose embeddings it reproduces exactly (the
        optional ``compatible_ids`` metadata, comma-separated): a bank recorded with one
        of them is accepted. The shipped spectral model lists the file it replaced when
        its logarithms got a floor.
    """

    name: str
    version: str
    sample_rate: int
    window_seconds: float
    dim: int
    metric: str
    training_data: str
    sha256: str
    members: tuple[str, ...] = ()
    compatible: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """``"<name>-<version>:<sha256[:16]>"``: what a bank records to refuse other models."""
        return f"{self.name}-{self.version}:{self.sha256[:16]}"

    @property
    def window_samples(self) -> int:
        """Samples per window, ``round(sample_rate * window_seconds)``."""
        return round(self.sample_rate * self.window_seconds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable fields, ``id`` and ``window_samples`` included."""
        d = {**asdict(self), "id": self.id, "window_samples": self.window_samples}
        d["members"] = list(self.members)
        d["compatible"] = list(self.compatible)
        return d

    @classmethod
    def from_metadata(cls, meta: dict[str, str], sha256: str, source: str) -> ModelInfo:
        """Parse and validate ``metadata_props``.

        Parameters
        ----------
        meta : dict of str to str
            The model's custom metadata map.
        sha256 : str
            Hex digest of the file.
        source : str
            The file name, for error messages.

        Raises
        ------
        ModelError
            A key is missing or its value is invalid (the message names key and file).
        """
        for key in REQUIRED_METADATA:
            if key not in meta:
                raise ModelError(
                    f"model {source} lacks the metadata key '{key}'",
                    help=f"an edgeasd model declares {', '.join(REQUIRED_METADATA)}; "
                    + _EXPORT_HELP,
                )

        def bad(key: str, allowed: str) -> ModelError:
            return ModelError(
                f"model {source} has an invalid '{key}' in its metadata: {meta[key]!r} "
                f"(allowed: {allowed})",
                help=_EXPORT_HELP,
            )

        try:
            sample_rate = int(meta["sample_rate"])
        except ValueError:
            raise bad("sample_rate", "a positive integer in Hz") from None
        if sample_rate <= 0:
            raise bad("sample_rate", "a positive integer in Hz")
        try:
            window_seconds = float(meta["window_seconds"])
        except ValueError:
            raise bad("window_seconds", "a positive number of seconds") from None
        if not (math.isfinite(window_seconds) and window_seconds > 0):
            raise bad("window_seconds", "a positive number of seconds")
        if round(sample_rate * window_seconds) < 1:
            raise bad("window_seconds", "at least one sample long")
        try:
            dim = int(meta["embedding_dim"])
        except ValueError:
            raise bad("embedding_dim", "a positive integer") from None
        if dim <= 0:
            raise bad("embedding_dim", "a positive integer")
        if meta["metric"] not in METRICS:
            raise bad("metric", " or ".join(METRICS))
        for key in ("model_name", "model_version"):
            if not meta[key].strip():
                raise bad(key, "a non-empty string")
        return cls(
            name=meta["model_name"],
            version=meta["model_version"],
            sample_rate=sample_rate,
            window_seconds=window_seconds,
            dim=dim,
            metric=meta["metric"],
            training_data=meta["training_data"],
            sha256=sha256,
            compatible=tuple(
                c.strip() for c in meta.get(COMPATIBLE_KEY, "").split(",") if c.strip()
            ),
        )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Embedder:
    """Embeds fixed-length audio windows with an ONNX model on the CPU.

    Parameters
    ----------
    path : path-like
        The ONNX model file.
    threads : int
        onnxruntime intra-op threads (inter-op is 1; sequential execution).

    Attributes
    ----------
    info : ModelInfo
        The model's declared metadata and hash.
    path : pathlib.Path
        The model file.

    Raises
    ------
    ModelError
        The file is missing, unreadable or not an ONNX model, its metadata is missing
        or invalid, or its inputs/outputs do not follow the contract.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        import onnxruntime as ort

        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InputError(f"threads must be a positive integer, got {threads!r}")
        self.path = Path(path)
        try:
            sha256 = file_sha256(self.path)
        except OSError as exc:
            raise ModelError(
                f"cannot read model file {self.path}: {exc.strerror or exc}",
                help="check model.path in the configuration and the file's permissions",
            ) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Idle worker threads must sleep, not spin: the agent is idle most of the time.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own, unexported exception types
            raise ModelError(
                f"cannot load model {self.path}: {str(exc).strip().splitlines()[0][:300]}",
                help="model.path must point to an ONNX file exported for edgeasd",
            ) from None
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info = ModelInfo.from_metadata(meta, sha256, str(self.path))
        self.threads = threads
        self._input, self._output, self._max_batch = self._check_io()

    def _check_io(self) -> tuple[str, str, int | None]:
        """Names of the waveform input and embedding output, and a fixed batch size if any."""
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        names = [i.name for i in inputs]
        if "waveform" in names:
            inp = inputs[names.index("waveform")]
        elif len(inputs) == 1:
            inp = inputs[0]
        else:
            raise ModelError(
                f"model {self.path} has inputs {names} but no 'waveform' input",
                help="the model's single input is the (batch, samples) float32 waveform",
            )
        out_names = [o.name for o in outputs]
        out = outputs[out_names.index("embedding")] if "embedding" in out_names else outputs[0]
        shape = list(inp.shape)
        if len(shape) != 2 or inp.type != "tensor(float)":
            raise ModelError(
                f"model {self.path} input '{inp.name}' is {inp.type} of shape {shape}, "
                "not a (batch, samples) float32 waveform",
                help=_EXPORT_HELP,
            )
        n = self.info.window_samples
        if isinstance(shape[1], int) and shape[1] != n:
            raise ModelError(
                f"model {self.path} takes {shape[1]} samples per window but its metadata "
                f"declares {self.info.window_seconds} s at {self.info.sample_rate} Hz = {n}",
                help="re-export the model with matching window_seconds and sample_rate",
            )
        max_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        return inp.name, out.name, max_batch

    @property
    def window_samples(self) -> int:
        """Samples per input window."""
        return self.info.window_samples

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Embed a batch of windows.

        Parameters
        ----------
        windows : ndarray, shape (b, n)
            Float audio at ``info.sample_rate``, ``n == info.window_samples``; converted
            to contiguous float32.

        Returns
        -------
        ndarray, shape (b, dim), float32
            One embedding per window.

        Raises
        ------
        InputError
            ``windows`` is not 2-D, has the wrong length, or holds NaN/inf.
        ModelError
            The model fails or returns the wrong shape.
        EmbeddingError
            The model returned NaN/inf for a window (a property of the window, not the file).
        """
        x = np.asarray(windows)
        if x.ndim != 2:
            raise InputError(f"windows must be a (batch, samples) array, got shape {x.shape}")
        if x.shape[1] != self.window_samples:
            raise InputError(
                f"windows have {x.shape[1]} samples but model {self.info.name} takes "
                f"{self.window_samples} ({self.info.window_seconds} s at "
                f"{self.info.sample_rate} Hz)"
            )
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise InputError(f"windows must be numeric, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise InputError("windows contain NaN or infinite samples")
        if x.shape[0] == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        step = self._max_batch or x.shape[0]
        parts = [self._run(x[i : i + step]) for i in range(0, x.shape[0], step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            (y,) = self._session.run([self._output], {self._input: x})
        except Exception as exc:
            raise ModelError(
                f"model {self.info.id} failed on a batch of shape {x.shape}: "
                f"{str(exc).strip().splitlines()[0][:300]}",
                help="the model file may be incompatible with this onnxruntime version",
            ) from None
        y = np.asarray(y)
        if y.shape != (x.shape[0], self.info.dim):
            raise ModelError(
                f"model {self.info.id} returned shape {y.shape} for {x.shape[0]} windows; "
                f"its metadata declares embedding_dim {self.info.dim}",
                help="re-export the model with the correct embedding_dim",
            )
        if not np.isfinite(y).all():
            bad = int((~np.isfinite(y).all(axis=1)).sum())
            raise EmbeddingError(
                f"model {self.info.id} could not embed {bad} of {x.shape[0]} window(s): "
                "the embedding holds NaN or infinite values",
                help="such a window usually holds a dropout (a run of digital zeros) or an "
                "extreme signal the model's arithmetic cannot represent; the agent skips it",
            )
        return np.ascontiguousarray(y, dtype=np.float32)


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """A model's :class:`ModelInfo` (loads the model once to validate it)."""
    return Embedder(path).info


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``pos``: (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, bytes | int]]:
    """Top-level (field number, value) pairs of a protobuf message (groups unsupported)."""
    out: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated field")
            out.append((field, bytes(buf[pos : pos + size])))
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def peek_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """A model's :class:`ModelInfo` from its ``metadata_props``, without onnxruntime.

    Walks the top level of the ONNX ``ModelProto`` (field 14: key 1, value 2 strings), so a
    read-only command that only needs the window length (``bank summary``) neither imports
    onnxruntime nor builds an inference session (measured: 0.1 s and 20 MB less). The model
    is not validated: scoring and enrollment load it with :class:`Embedder`.

    Raises
    ------
    ModelError
        The file cannot be read, is not an ONNX model, or its metadata is invalid.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
        meta: dict[str, str] = {}
        for field, value in _fields(buf):
            if field == 14 and isinstance(value, bytes):
                entry = dict(_fields(value))
                meta[bytes(entry.get(1, b"")).decode()] = bytes(entry.get(2, b"")).decode()
    except OSError as exc:
        raise ModelError(
            f"cannot read model file {path}: {exc.strerror or exc}",
            help="check model.path in the configuration and the file's permissions",
        ) from None
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise ModelError(
            f"model {path} is not a readable ONNX file ({exc})",
            help="model.path must point to an ONNX file exported for edgeasd",
        ) from None
    return ModelInfo.from_metadata(meta, hashlib.sha256(buf).hexdigest(), str(path))
