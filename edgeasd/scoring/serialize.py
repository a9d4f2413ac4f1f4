"""Conversion of a :class:`ReferenceBank` to and from a JSON header plus plain arrays.

Works on the bank's explicit state: its :class:`~edgeasd.scoring.references.ReferenceSet`
(``bank.references_``), its :class:`~edgeasd.scoring.calibrate.Calibration`
(``bank.calibration_``) and ``bank.meta``. The neighbour lists (or sums) are stored too,
so loading a bank does not redo the O(N² · dim) density build; the calibration result is
stored so that loading does not recompute it either. The byte-level format is in
:mod:`edgeasd.scoring.store`; this module defines the header keys and array names, which
are the same in every format-1 file ever written (``tests/scoring/data`` holds such files).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from edgeasd.scoring.bank import ReferenceBank
from edgeasd.scoring.calibrate import Calibration
from edgeasd.scoring.forward import RULE_VERSION as FORWARD_RULE_VERSION
from edgeasd.scoring.forward import SessionState
from edgeasd.scoring.references import Geometry, ReferenceSet
from edgeasd.scoring.validate import Labels


def to_state(bank: ReferenceBank) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The bank as a JSON-serializable header and a dict of arrays (calibrates if stale)."""
    data, cal = bank.references_, bank.calibration_
    n = data.n
    if cal.stale or cal.forward_stale:
        cal.update(data)
    header = {
        "params": asdict(data.geometry),
        "n": n,
        "next_id": data.next_id,
        "group_names": data.group_labels.names,
        "domain_names": data.domain_labels.names,
        "meta": bank.meta,
        "calibration": {
            "rule": cal.rule,
            "q": cal.q,
            "value": cal.value,
            "threshold": cal.threshold,
            "description": cal.description,
            # the forward scores' eligibility rule, and whether the LOGO scores were
            # computed (they are only for the rules that use them)
            "forward_rule": FORWARD_RULE_VERSION,
            "loo_computed": not cal.loo_stale,
            "session_start": cal.session.start,
            "session_last": cal.session.last if np.isfinite(cal.session.last) else None,
        },
    }
    arrays = {
        "embeddings": data.y[:n],
        "ids": data.ids[:n],
        "groups": data.grp[:n],
        "domains": data.dom[:n],
        "added_at": data.added[:n],
        "loo": cal.loo if not cal.loo_stale else np.full(n, np.nan),
        "forward": cal.forward,
        "session_forward": cal.session_forward,
        "session_rho": cal.session.rho,
    }
    for name, arr in data.neighbours.to_arrays(n).items():
        arrays["state_" + name] = arr
    return header, arrays


def _references(
    header: dict[str, Any], arrays: dict[str, np.ndarray], spare: bool = True
) -> ReferenceSet:
    """The checked :class:`ReferenceSet` of a header and its arrays (densities not refreshed).

    ``spare``: copy into storage with spare rows; else keep the given arrays (no copy).
    """
    # a file written before the condition rule had versions was built with its first one
    data = ReferenceSet(Geometry(**{"condition_version": 1, **header["params"]}))
    n = int(header["n"])
    ids = arrays["ids"]
    if arrays["embeddings"].shape != (n, data.geometry.dim):
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
    if spare:  # spare rows: the next enrollment copies nothing
        data.reserve(n, spare=True)
        data.y[:n] = arrays["embeddings"]
        data.ids[:n], data.grp[:n], data.dom[:n] = ids, arrays["groups"], arrays["domains"]
        data.added[:n] = arrays["added_at"]
    else:
        data.y, data.ids, data.grp = arrays["embeddings"], ids, arrays["groups"]
        data.dom, data.added = arrays["domains"], arrays["added_at"]
        data.ysq = np.empty(n)
    data.ysq[:n] = np.einsum("ij,ij->i", data.y[:n], data.y[:n], dtype=np.float64)
    data.group_labels, data.domain_labels = Labels(groups), Labels(domains)
    data.n, data.next_id = n, int(header["next_id"])
    state = {k[len("state_") :]: v for k, v in arrays.items() if k.startswith("state_")}
    if any(v.shape[0] != n for v in state.values()):
        raise ValueError("neighbour state does not match the number of references")
    data.neighbours.from_arrays(state, n)
    data.neighbours.reserve(data.y.shape[0])
    return data


def _calibration(header: dict[str, Any], arrays: dict[str, np.ndarray], n: int) -> Calibration:
    """The stored calibration; stale when it lacks forward-chaining scores."""
    saved = header["calibration"]
    cal = Calibration(rule=saved["rule"], q=float(saved["q"]), value=saved["value"])
    cal.threshold, cal.description = float(saved["threshold"]), saved["description"]
    cal.loo, cal.stale = arrays["loo"], False
    cal.loo_stale = not saved.get("loo_computed", True)
    cal.forward, cal.forward_stale = arrays.get("forward", np.empty(0)), False
    cal.session_forward = arrays.get("session_forward", np.empty(0))
    last = saved.get("session_last")
    cal.session = SessionState(
        int(saved.get("session_start", 0)),
        arrays.get("session_rho", np.empty(0)),
        -np.inf if last is None else float(last),
    )
    # banks saved before these scores existed, or under another eligibility rule, replay
    # them once on first use (then save them with the bank)
    if (
        cal.forward.shape != (n,)
        or cal.session_forward.shape != (n,)
        or cal.session.rho.shape != (min(cal.session.start, n),)
        or saved.get("forward_rule") != FORWARD_RULE_VERSION
    ):
        cal.stale = cal.forward_stale = True
    return cal


def from_state(
    header: dict[str, Any], arrays: dict[str, np.ndarray], spare: bool = True
) -> ReferenceBank:
    """Rebuild a bank from :func:`to_state` output (``spare``: see :func:`_references`).

    Raises
    ------
    ValueError, KeyError, IndexError, TypeError
        The header and arrays are inconsistent (the caller reports the file).
    """
    data = _references(header, arrays, spare)
    return ReferenceBank.from_references(
        data, _calibration(header, arrays, data.n), dict(header["meta"])
    )
