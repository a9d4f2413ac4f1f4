"""The reference bank's lifecycle in the agent: created, opened, checked, summarized.

A bank is built with the configured scoring settings and stamped with the model's id
(:func:`new_bank`); opening one (:func:`open_bank`) refuses a bank of another model
(:func:`check_model`) and names scoring settings that changed since it was built
(:func:`settings_mismatch`). Enrolling into it is :func:`edgeasd.agent.enrollment.enroll.commit`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeasd.errors import BankError
from edgeasd.model_check import require_compatible
from edgeasd.scoring import ReferenceBank, load_bank
from edgeasd.scoring.density_rules import CONDITION_VERSION

if TYPE_CHECKING:
    from edgeasd.embedding.onnx import ModelInfo

log = logging.getLogger(__name__)


def new_bank(scoring: Any, model_info: Any) -> ReferenceBank:
    """An empty bank with the configured scoring options, stamped with the model's id.

    Parameters
    ----------
    scoring : edgeasd.config.sections.ScoringConfig
        ``density``, ``k``, ``r``, ``norm``, ``exclude_same_group``, ``density_cap``,
        ``density_rule``.
    model_info : edgeasd.embedding.onnx.ModelInfo
    """
    bank = ReferenceBank(
        model_info.dim,
        metric=model_info.metric,
        density=scoring.density,
        k=scoring.k,
        r=scoring.r,
        norm=scoring.norm,
        exclude_same_group=scoring.exclude_same_group,
        density_cap=scoring.density_cap,
        density_rule=scoring.density_rule,
    )
    bank.meta["model_id"] = model_info.id
    bank.meta["model_name"] = model_info.name
    return bank


def check_model(bank: ReferenceBank, model_info: ModelInfo, path: Path | None = None) -> None:
    """Refuse a bank embedded with another model than ``model_info``.

    The rule (the model's own id or one it declares compatible) is
    :func:`edgeasd.model_check.accepts`.

    Raises
    ------
    ModelError
        With the two model ids and the command that fixes it.
    """
    require_compatible(bank.meta.get("model_id"), model_info, path)


#: Scoring settings a bank fixes when it is built: ``scoring.<key>`` -> bank attribute.
BANK_SETTINGS = {
    "density": "density",
    "k": "k",
    "r": "r",
    "norm": "norm",
    "exclude_same_group": "exclude_same_group",
    "density_cap": "density_cap",
    "density_rule": "density_rule",
}


def settings_mismatch(bank: ReferenceBank, scoring: Any) -> str | None:
    """Which ``scoring`` keys differ from the settings the bank was built with (None: none).

    A bank keeps the density, k, r, norm, exclude_same_group, density_cap and density_rule it
    was built with (and the ``condition`` rule's version,
    :data:`edgeasd.scoring.density_rules.CONDITION_VERSION`); changing them in the
    configuration does nothing until ``edgeasd bank rebuild``.
    This warns rather than refuses: the agent keeps monitoring with the bank it has (the
    daemon degrades, never dies), and the message says how to apply the new settings.
    """
    diff = [
        f"scoring.{key}: config {getattr(scoring, key)!r}, bank {getattr(bank, attr)!r}"
        for key, attr in BANK_SETTINGS.items()
        if getattr(scoring, key) != getattr(bank, attr)
    ]
    version = bank.references_.geometry.condition_version
    if scoring.density_rule == bank.density_rule == "condition" and version < CONDITION_VERSION:
        diff.append(
            f"scoring.density_rule: bank 'condition' version {version}, this edgeasd's "
            f"version {CONDITION_VERSION} (a condition's first recording scored too high)"
        )
    if not diff:
        return None
    return (
        "the bank was built with other scoring settings than configured ("
        + "; ".join(diff)
        + "); the bank's are in force: apply the configured ones with `edgeasd bank rebuild` "
        "(daemon stopped), or set them back in the configuration"
    )


def open_bank(path: Path, scoring: Any, model_info: Any) -> ReferenceBank:
    """Load the bank at ``path`` (checking its model) or start an empty one if none exists.

    Logs a warning when the configured ``scoring`` settings differ from the bank's
    (:func:`settings_mismatch`).
    """
    if not Path(path).exists():
        return new_bank(scoring, model_info)
    bank = load_bank(path, spare=True)  # the daemon and direct enrollment grow it
    check_model(bank, model_info, path)
    mismatch = settings_mismatch(bank, scoring)
    if mismatch:
        log.warning("%s", mismatch)
    return bank


def require_bank(bank: ReferenceBank, minimum: int) -> None:
    """Refuse scoring with a bank smaller than ``minimum`` references."""
    if len(bank) < minimum:
        raise BankError(
            f"the reference bank holds {len(bank)} references; scoring needs at least {minimum}",
            help="enroll recordings of normal operation first: `edgeasd enroll FILE...` or "
            "`edgeasd enroll --next N` while the daemon runs",
        )


def bank_summary(bank: ReferenceBank) -> dict[str, int]:
    """Number of references per domain tag."""
    domains, counts = np.unique(
        np.asarray(bank.domains_, dtype=object).astype(str), return_counts=True
    )
    return {str(d): int(c) for d, c in zip(domains, counts, strict=True)}


def domain_by_id(bank: ReferenceBank) -> dict[int, str]:
    """Domain tag of each reference id, for O(1) ``nearest_domain`` lookups per window.

    ``bank.domains_`` builds an array of all N tags: read it once, not once per window.
    """
    return dict(zip(bank.ids_.tolist(), bank.domains_.tolist(), strict=True))
