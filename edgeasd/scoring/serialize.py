"""Conversion of a :class:`ReferenceBank` to and from a JSON header plus plain arrays.

The neighbour lists (or sums) are stored too, so loading a bank does not redo the
O(N² · dim) density build; the calibration result is stored so that loading does
not recompute it either. The byte-level format is in :mod:`edgeasd.scoring.store`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeasd.scoring.bank import ReferenceBank
from edgeasd.scoring.validate import Labels


def to_state(bank: ReferenceBank) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The bank as a JSON-serializable header and a dict of arrays."""
    n = len(bank)
    cal = bank._calibration
    if cal.stale:
        cal.update(bank)
    header = {
        "params": {
            "dim": bank.dim,
            "metric": bank.metric,
            "density": bank.density_mode,
            "k": bank.k,
            "r": bank.r,
            "norm": bank.norm,
            "exclude_same_group": bank.exclude_same_group,
        },
        "n": n,
        "next_id": bank._next_id,
        "group_names": bank._group_labels.names,
        "domain_names": bank._domain_labels.names,
        "meta": bank.meta,
        "calibration": {
            "rule": cal.rule,
            "q": cal.q,
            "value": cal.value,
            "threshold": cal.threshold,
            "description": cal.description,
        },
    }
    arrays = {
        "embeddings": bank._y[:n],
        "ids": bank._ids[:n],
        "groups": bank._grp[:n],
        "domains": bank._dom[:n],
        "added_at": bank._added[:n],
        "loo": cal.loo,
        "forward": cal.forward,
    }
    for name, arr in bank._state.to_arrays(n).items():
        arrays["state_" + name] = arr
    return header, arrays


def from_state(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> ReferenceBank:
    """Rebuild a bank from :func:`to_state` output.

    Raises
    ------
    ValueError, KeyError, IndexError
        The header and arrays are inconsistent (the caller reports the file).
    """
    bank = ReferenceBank(**header["params"])
    n = int(header["n"])
    ids = arrays["ids"]
    if arrays["embeddings"].shape != (n, bank.dim):
        raise ValueError(f"embeddings have shape {arrays['embeddings'].shape}, expected {n} rows")
    for name in ("ids", "groups", "domains", "added_at", "loo"):
        if arrays[name].shape != (n,):
            raise ValueError(f"{name} has shape {arrays[name].shape}, expected ({n},)")
    if n and (np.any(np.diff(ids) <= 0) or ids[0] < 0 or ids[-1] >= header["next_id"]):
        raise ValueError("reference ids are not increasing or out of range")
    groups, domains = list(map(str, header["group_names"])), list(map(str, header["domain_names"]))
    for name, names in (("groups", groups), ("domains", domains)):
        codes = arrays[name]
        if n and (codes.min() < 0 or codes.max() >= len(names)):
            raise ValueError(f"{name} codes out of range")
    bank._reserve(n)
    bank._y[:n] = arrays["embeddings"]
    bank._ysq[:n] = np.einsum("ij,ij->i", bank._y[:n], bank._y[:n], dtype=np.float64)
    bank._ids[:n], bank._grp[:n], bank._dom[:n] = ids, arrays["groups"], arrays["domains"]
    bank._added[:n] = arrays["added_at"]
    bank._group_labels, bank._domain_labels = Labels(groups), Labels(domains)
    bank._n, bank._next_id = n, int(header["next_id"])
    bank.meta = dict(header["meta"])
    state = {k[len("state_") :]: v for k, v in arrays.items() if k.startswith("state_")}
    if any(v.shape[0] != n for v in state.values()):
        raise ValueError("neighbour state does not match the number of references")
    bank._state.from_arrays(state, n)
    bank._state.reserve(bank._y.shape[0])
    bank._refresh()
    cal, saved = bank._calibration, header["calibration"]
    cal.rule, cal.q, cal.value = saved["rule"], float(saved["q"]), saved["value"]
    cal.threshold, cal.description = float(saved["threshold"]), saved["description"]
    cal.loo, cal.stale, cal.loo_stale = arrays["loo"], False, False
    # banks saved before forward-chaining scores existed recompute them on first use
    cal.forward = arrays.get("forward", np.empty(0))
    if cal.forward.shape != (n,):
        cal.stale = cal.loo_stale = True
    return bank
