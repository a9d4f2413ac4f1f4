"""The one model-compatibility rule: may a bank's embeddings be compared with a model's?

A reference bank records the id of the model that embedded it (``meta["model_id"]``,
:attr:`edgeasd.embedding.onnx.ModelInfo.id`: name, version and content hash). Embeddings of two
different models live in different spaces: their distances mean nothing. A bank is accepted
by a model when it records no model yet (a new bank), the model's own id, or one of the ids
the model declares it reproduces exactly (:attr:`~edgeasd.embedding.onnx.ModelInfo.compatible`, the
``compatible_ids`` metadata, :data:`edgeasd.embedding.onnx.COMPATIBLE_KEY`).

:func:`edgeasd.agent.enrollment.bank_lifecycle.check_model` applies it to a bank opened for the
daemon or a CLI command; the bank's own :meth:`~edgeasd.scoring.ReferenceBank.claim_model`
(which also records the id into a new bank) calls :func:`require_compatible` too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from edgeasd.errors import ModelError

if TYPE_CHECKING:
    from edgeasd.embedding.onnx import ModelInfo


def accepts(recorded: str | None, model: ModelInfo | str) -> bool:
    """Whether a bank recording model id ``recorded`` may be scored with ``model``.

    Parameters
    ----------
    recorded : str or None
        The bank's ``meta["model_id"]`` (None: no model recorded yet).
    model : ModelInfo or str
        The model in use, or only its id (then no compatible ids are known).
    """
    if recorded is None:
        return True
    if isinstance(model, str):
        return recorded == model
    return recorded == model.id or recorded in model.compatible


def require_compatible(
    recorded: str | None,
    model: ModelInfo | str,
    path: str | os.PathLike[str] | None = None,
) -> None:
    """Refuse a bank embedded with a model :func:`accepts` refuses.

    Parameters
    ----------
    recorded : str or None
        The bank's ``meta["model_id"]``.
    model : ModelInfo or str
        The model in use (or its id).
    path : path-like, optional
        The bank file, named in the message.

    Raises
    ------
    ModelError
        With the two model ids and the command that fixes it.
    """
    if accepts(recorded, model):
        return
    model_id = model if isinstance(model, str) else model.id
    where = f" {path}" if path else ""
    raise ModelError(
        f"the reference bank{where} was embedded with model {recorded}, but the configured "
        f"model is {model_id}; its scores would be meaningless",
        help="re-embed the kept enrollment audio with `edgeasd bank rebuild`, or configure "
        "the previous model again (model.path)",
    )
