"""The embedding models shipped inside the package, and which one is the default.

* ``edgeasd-spectral-v1.onnx``: log-mel band statistics, no training: the default;
* ``edgeasd-directact-v2-int8.onnx``: Direct-ACT trained on simulated machine sounds,
  int8 (``…-v2.onnx``: its fp32 original, for re-quantizing on your own clips). It is
  *not* the default: on held-out simulated machines, of types it saw and of one it never
  saw, it scored below the spectral model, see ``MODEL_CARD.md``; select it with
  ``model.path`` in the configuration, alone or in an ensemble.

Importing this module never imports torch or onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

#: Folder holding the shipped ``.onnx`` files and the model card.
MODELS_DIR = Path(__file__).resolve().parent
#: File name of the trained Direct-ACT int8 model.
DIRECTACT_MODEL = "edgeasd-directact-v2-int8.onnx"
#: Its fp32 original (kept for the int8-vs-fp32 benchmark and parity checks).
DIRECTACT_FP32_MODEL = "edgeasd-directact-v2.onnx"
#: File name of the no-training spectral baseline model.
SPECTRAL_MODEL = "edgeasd-spectral-v1.onnx"
#: Preference order of the default model: the spectral model first, because the trained
#: Direct-ACT did not beat it on the held-out checks of MODEL_CARD.md. A retrained model
#: that does goes first here.
DEFAULT_ORDER = (SPECTRAL_MODEL, DIRECTACT_MODEL)


def default_model_path() -> Path:
    """The model the agent uses when the configuration names none.

    Returns
    -------
    pathlib.Path
        The first shipped file of :data:`DEFAULT_ORDER` that exists (the spectral model's
        path if, in a broken install, none does; loading it then raises a clear error).
    """
    for name in DEFAULT_ORDER:
        path = MODELS_DIR / name
        if path.is_file():
            return path
    return MODELS_DIR / SPECTRAL_MODEL


def directact_model_path() -> Path:
    """The shipped int8 Direct-ACT model trained on simulated machine sounds."""
    return MODELS_DIR / DIRECTACT_MODEL


def spectral_model_path() -> Path:
    """The no-training spectral baseline model (works for any machine without training)."""
    return MODELS_DIR / SPECTRAL_MODEL


def shipped_models() -> list[Path]:
    """Every ``.onnx`` file this release ships, the default first."""
    default = default_model_path()
    others = sorted(p for p in MODELS_DIR.glob("*.onnx") if p != default)
    return [default, *others] if default.is_file() else others


def shipped_model_for(model_id: str) -> Path | None:
    """The shipped model whose embeddings a bank recording ``model_id`` holds, if any.

    After an upgrade that changes the default model, a bank built with the previous default
    keeps being scored by that model while this release still ships it (the upgrade
    procedure in ``systemd/README.md``). Loads each shipped model's metadata (onnxruntime),
    so call it only when the default model refuses the bank.

    Parameters
    ----------
    model_id : str
        The bank's ``meta["model_id"]``.

    Returns
    -------
    pathlib.Path or None
        The model file that accepts the bank (its own id, or one it declares compatible),
        or None when no shipped model does.
    """
    from edgeasd.embedding.onnx import read_model_info
    from edgeasd.model_check import accepts

    for path in shipped_models():
        if accepts(model_id, read_model_info(path)):
            return path
    return None
