"""Embedding cache for evaluation runs: one ``.npz`` per (model, file list), no pickle.

Comparing normalization approaches must not re-embed the dataset each time. The cache key is a
SHA-256 over the model id and, for every file in order, its resolved path, size and modification
time, so a changed file or a different model never returns stale embeddings. Files are written
atomically (temporary file, then ``os.replace``) and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgeasd.atomic import replacing
from edgeasd.errors import InputError

_FORMAT = 1


def cache_key(model_id: str, files: Sequence[str | Path]) -> str:
    """The SHA-256 hex digest identifying ``model_id`` applied to ``files`` in this order."""
    h = hashlib.sha256(f"edgeasd-embeddings-v{_FORMAT}\n{model_id}\n".encode())
    for f in files:
        p = Path(f).resolve()
        try:
            st = p.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{p}\t{stamp}\n".encode())
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings on disk under ``<directory>/<model slug>/<key>.npz``.

    Parameters
    ----------
    directory : path
        Cache root; created on first write.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, model_id: str, files: Sequence[str | Path]) -> Path:
        """Where the embeddings of ``files`` under ``model_id`` are stored."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:80] or "model"
        return self.directory / slug / f"{cache_key(model_id, files)[:32]}.npz"

    def load(self, model_id: str, files: Sequence[str | Path]) -> np.ndarray | None:
        """The cached ``(len(files), dim)`` float32 embeddings, or None if absent or unusable."""
        path = self.path(model_id, files)
        try:
            with np.load(path, allow_pickle=False) as z:
                names, emb, mid = z["files"], z["embeddings"], str(z["model_id"])
        except (OSError, KeyError, ValueError):
            return None
        if mid != model_id or list(names) != [str(Path(f).resolve()) for f in files]:
            return None
        if emb.ndim != 2 or len(emb) != len(files):
            return None
        return emb.astype(np.float32, copy=False)

    def save(self, model_id: str, files: Sequence[str | Path], embeddings: np.ndarray) -> Path:
        """Store ``embeddings`` of shape ``(len(files), dim)`` atomically; returns the path."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(files):
            raise InputError(f"embeddings must be (n_files={len(files)}, dim), got {emb.shape}")
        path = self.path(model_id, files)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, 0o600, fsync=False) as f:  # 0600: what mkstemp gave it
            np.savez(
                f,
                embeddings=emb,
                files=np.array([str(Path(p).resolve()) for p in files], dtype=str),
                model_id=np.array(model_id),
            )
        return path

    def get_or_compute(
        self,
        model_id: str,
        files: Sequence[str | Path],
        compute: Callable[[Sequence[str | Path]], np.ndarray],
    ) -> np.ndarray:
        """Cached embeddings of ``files``, computing and storing them with ``compute`` if needed."""
        emb = self.load(model_id, files)
        if emb is None:
            emb = np.asarray(compute(files), dtype=np.float32)
            self.save(model_id, files, emb)
        return emb
