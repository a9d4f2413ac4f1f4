"""``edgeasd-spectral-v3``: spectral shape, frame-to-frame change and fine spectrum, equal weights.

No training data: three of :mod:`edgeasd.train.spectral_v2`'s blocks of a 10 s window at
16 kHz, each L2-normalized on its own and given the same weight (a third of the cosine
distance each):

* ``shape`` (64): mean log-mel level per band minus the mean over bands;
* ``flux`` (64): mean absolute frame-to-frame change per band (32 ms);
* ``spectrum`` (513): the log of the window's mean power in each FFT bin minus its mean.

The three blocks are the pick of the selection procedure "equal-weight subsets of v2's five
blocks, the rule that chose v2" (``benchmarks/real_selection.py``) on the real recordings of
``../shared/data/real-clips``; that procedure, applied to five machine types and judged on
the sixth, passes issue 18's bar. MODEL_CARD.md has the figures, including the cost of having
tried 18 procedures.

Build the shipped files (fp32, then the int8 copy)::

    python -m edgeasd.train.spectral_v3

Deterministic (fixed matrices, no random numbers, no calibration data). The int8 file stores
the mel filterbank, the one feature matrix, as int8 behind ``DequantizeLinear``
(:mod:`edgeasd.train.weight_only`); the STFT, logarithms and statistics compute in float.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from edgeasd.train import fixed_build
from edgeasd.train.frontend import mel_filterbank, stft_magnitude
from edgeasd.train.metadata import ModelMetadata
from edgeasd.train.spectral_v2 import (
    BLOCK_EPS,
    HOP,
    LOG_FLOOR,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_SECONDS,
    block_dims,
)

#: The blocks, equal weights (module docstring).
BLOCKS = ("shape", "flux", "spectrum")
#: A last, constant dimension: digital silence (every block 0: a flat spectrum, no change)
#: embeds as the unit vector along it instead of a zero vector (v2's modulation block gives
#: a constant there; these three blocks do not). It adds 1e-6 to every cosine between
#: sounding windows, which changes no ranking.
SILENCE_ANCHOR = 1e-3
EMBEDDING_DIM = sum(block_dims()[k] for k in BLOCKS) + 1
MODEL_NAME = "edgeasd-spectral"
MODEL_VERSION = "v3"


class SpectralShapeFluxEmbedding(torch.nn.Module):
    """Waveform → the three L2-normalized blocks, each scaled by ``sqrt(1/3)``, concatenated,
    then :data:`SILENCE_ANCHOR`, the whole normalized to unit length.

    The embedding's cosine distance is the mean of the blocks' own cosine distances (up to
    1e-6, the anchor's share).
    """

    def __init__(self) -> None:
        super().__init__()
        import numpy as np

        fb = mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, fmin=20.0)
        self.register_buffer("filterbank", torch.from_numpy(np.asarray(fb, np.float32)))
        self.scale = math.sqrt(1.0 / len(BLOCKS))

    def blocks(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        """The raw blocks of a batch of windows, as :meth:`SpectralTemporalEmbedding.blocks`.

        Parameters
        ----------
        waveform : torch.Tensor, shape (batch, samples), float32

        Returns
        -------
        dict of str to torch.Tensor
            ``shape``, ``flux`` ``(batch, N_MELS)`` and ``spectrum`` ``(batch, N_FFT // 2 + 1)``.
        """
        power = stft_magnitude(waveform, N_FFT, HOP, method="stft") ** 2  # (b, bins, frames)
        mel = torch.matmul(self.filterbank, power)  # (b, mels, frames)
        level = torch.log10(mel.clamp_min(LOG_FLOOR))
        mean = level.mean(dim=2)
        spectrum = torch.log10(power.mean(dim=2).clamp_min(LOG_FLOOR))
        return {
            "shape": mean - mean.mean(dim=1, keepdim=True),
            "flux": (level[:, :, 1:] - level[:, :, :-1]).abs().mean(dim=2),
            "spectrum": spectrum - spectrum.mean(dim=1, keepdim=True),
        }

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Embed a batch of windows.

        Parameters
        ----------
        waveform : torch.Tensor, shape (batch, samples), float32

        Returns
        -------
        torch.Tensor, shape (batch, EMBEDDING_DIM), unit L2 norm
        """
        blocks = self.blocks(waveform)
        parts = [F.normalize(blocks[k], dim=1, eps=BLOCK_EPS) * self.scale for k in BLOCKS]
        parts.append(torch.full_like(blocks["shape"][:, :1], SILENCE_ANCHOR))
        # norm sqrt(1 + 1e-6) already, except where a block is (nearly) constant: silence
        return F.normalize(torch.cat(parts, dim=1), dim=1)


def metadata(version: str = MODEL_VERSION) -> ModelMetadata:
    """The metadata the model carries (``version`` ``v3`` or ``v3-int8``)."""
    return ModelMetadata(
        sample_rate=SAMPLE_RATE,
        window_seconds=WINDOW_SECONDS,
        embedding_dim=EMBEDDING_DIM,
        model_name=MODEL_NAME,
        model_version=version,
        training_data="none: fixed log-mel shape, flux and spectrum statistics, no training; "
        "blocks chosen on real-clips (MIMII, ToyADMOS) by a held-out procedure (MODEL_CARD.md)",
    )


def build_fp32(out: str | Path) -> Path:
    """Export the float model to ``out`` and return the path (:func:`fixed_build.export_fp32`)."""
    return fixed_build.export_fp32(SpectralShapeFluxEmbedding(), metadata(), out)


def build_int8(fp32: str | Path, out: str | Path) -> Path:
    """The int8 copy of the float model at ``fp32``: its mel filterbank stored as int8 (QDQ)."""
    meta = metadata(f"{MODEL_VERSION}-int8")
    return fixed_build.int8_copy(fp32, out, meta, ["filterbank"], "edgeasd.train.spectral_v3")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m edgeasd.train.spectral_v3``."""
    stem = f"{MODEL_NAME}-{MODEL_VERSION}"
    return fixed_build.main(argv, "edgeasd.train.spectral_v3", stem, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
