"""Input checks of the scoring API: refuse bad data before anything changes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeasd.errors import InputError


def check_embeddings(X: object, dim: int, metric: str, name: str) -> np.ndarray:
    """Validate embeddings and return them as C-contiguous float32 rows.

    Parameters
    ----------
    X : (n, dim) or (dim,) array_like of float
    dim : int
        Expected dimension.
    metric : str
        Under ``"cosine"`` rows are L2-normalized in float64 (any finite scale is
        fine) and zero rows are refused; otherwise values must fit float32.
    name : str
        Argument name used in error messages.

    Returns
    -------
    (n, dim) float32

    Raises
    ------
    InputError
        Not numeric, wrong number of axes or dimension, empty, NaN/inf, zero rows
        under cosine, or values that overflow float32.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not a numeric array: {exc}") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{name} must have shape (n, {dim}) or ({dim},), got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(
            f"{name} is an empty batch (shape {arr.shape})", help="pass at least one embedding"
        )
    if arr.shape[1] != dim:
        raise InputError(
            f"{name} has dimension {arr.shape[1]}, the bank expects {dim}",
            help="embeddings must come from the model the bank was built with",
        )
    if metric == "cosine":
        ss = np.einsum("ij,ij->i", arr, arr)
        # fast path (every query batch): squared norms in [dim 1e-200, 1e200] put every row's
        # peak in _SAFE (peak^2 <= ss <= dim peak^2), so all are finite, non-zero and
        # normalized directly, as _unit_rows does, bit for bit; NaN fails the comparison
        if np.all((ss >= dim * _SAFE[0] ** 2) & (ss <= _SAFE[1] ** 2)):
            out = np.empty(arr.shape, np.float32)
            np.divide(arr, np.sqrt(ss)[:, None], out=out, casting="unsafe")
            return out
    peak = np.abs(arr).max(axis=1)  # NaN or inf anywhere in a row shows in its peak
    if not np.isfinite(peak).all():
        bad = np.flatnonzero(~np.isfinite(peak))
        raise InputError(f"{name} has NaN or infinite values in row(s) {bad[:10].tolist()}")
    if metric == "cosine":
        if not peak.all():
            zero = np.flatnonzero(peak == 0)
            raise InputError(
                f"{name} has zero vector(s) in row(s) {zero[:10].tolist()}, "
                "which have no direction under the cosine metric"
            )
        return _unit_rows(arr, peak)
    big = peak > np.finfo(np.float32).max
    if big.any():
        raise InputError(f"{name} has values beyond the float32 range (row {np.argmax(big)})")
    out = arr.astype(np.float32)
    return out


#: Rows whose largest magnitude lies in this range are normalized directly (their squared
#: norm cannot overflow or lose precision to underflow); others are scaled by it first.
_SAFE = (1e-100, 1e100)


def _unit_rows(arr: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, float32; each row's arithmetic depends on it alone."""
    out = arr / np.sqrt(np.einsum("ij,ij->i", arr, arr))[:, None]
    odd = np.flatnonzero((peak < _SAFE[0]) | (peak > _SAFE[1]))
    if odd.size:  # any finite scale: divide by the peak first
        t = arr[odd] / peak[odd, None]
        out[odd] = t / np.sqrt(np.einsum("ij,ij->i", t, t))[:, None]
    return out.astype(np.float32)


class Labels:
    """Interned string labels (groups, domains): each distinct name gets an int code.

    Parameters
    ----------
    names : iterable of str
        Names of codes 0, 1, ... (e.g. when loading a bank).
    """

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}

    def codes(self, labels: list[str]) -> np.ndarray:
        """Codes of ``labels`` (new names get new codes), shape ``(len(labels),)`` int64."""
        for label in labels:
            if label not in self.index:
                self.index[label] = len(self.names)
                self.names.append(label)
        return np.array([self.index[label] for label in labels], dtype=np.int64)


def as_labels(label: object, n: int, name: str) -> list[str]:
    """One string label per row from a scalar or a sequence of ``n`` labels.

    Parameters
    ----------
    label : str, int or sequence of them
    n : int
        Rows in the batch.
    name : str
        Argument name used in error messages.

    Returns
    -------
    list of n str
    """
    if isinstance(label, str | int | np.integer):
        return [str(label)] * n
    if isinstance(label, Sequence | np.ndarray):
        labels = list(label)
        if len(labels) != n:
            raise InputError(f"{name} has {len(labels)} labels for {n} embeddings")
        if not all(isinstance(x, str | int | np.integer) for x in labels):
            raise InputError(f"{name} labels must be strings or integers")
        return [str(x) for x in labels]
    raise InputError(
        f"{name} must be a string, an integer or a sequence of them, got {type(label).__name__}"
    )


def check_params(
    dim: object, metric: str, density: str, k: object, r: object, norm: str
) -> float | None:
    """Validate ReferenceBank parameters; returns ``r`` as float (``None`` for knn).

    Raises
    ------
    InputError
        A parameter is of the wrong type or out of range.
    """
    if not isinstance(dim, int | np.integer) or dim < 1:
        raise InputError(f"dim must be a positive integer, got {dim!r}")
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"unknown metric {metric!r}", help="use 'cosine' or 'euclidean'")
    if norm not in ("ratio", "difference", "none"):
        raise InputError(f"unknown norm {norm!r}", help="use 'ratio', 'difference' or 'none'")
    if density == "knn":
        if not isinstance(k, int | np.integer) or k < 1:
            raise InputError(f"knn density needs an integer k >= 1, got {k!r}")
        return None
    if density != "gwrp":
        raise InputError(f"unknown density {density!r}", help="use 'knn' or 'gwrp'")
    if not isinstance(r, int | float | np.floating) or not 0.0 <= float(r) <= 1.0:
        raise InputError(f"gwrp density needs r in [0, 1], got {r!r}")
    return float(r)
