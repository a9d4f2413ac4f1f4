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
