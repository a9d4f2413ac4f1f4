"""The no-training baseline embedding: log-mel band statistics of the whole window.

``edgeasd-spectral-v1`` needs no training data, so it works for any machine out of the
box and is the fallback default model. For a 10 s window at 16 kHz it computes a
64-band log-mel spectrogram (Hann 1024, hop 512) and summarizes each band over time:

* the spectral shape: mean log-mel level per band minus the mean over bands (64),
* the temporal variability: standard deviation of each band's level (64),
* the fast fluctuation: mean absolute frame-to-frame change of each band (64),
* four statistics of the frame energy: overall level, its standard deviation, and how
  far its maximum and minimum lie from its mean (impacts, dropouts, cycles).

Levels are in decibels divided by 10 so all blocks have comparable magnitudes; the
196-d vector is L2-normalized for cosine scoring. Build the shipped file with::

    python -m edgeasd.train.spectral [--out edgeasd/embedding/models/edgeasd-spectral-v1.onnx]

The build is deterministic (fixed filterbank, no random numbers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from edgeasd.train.export import export_onnx
from edgeasd.train.frontend import mel_filterbank, stft_magnitude
from edgeasd.train.metadata import ModelMetadata

SAMPLE_RATE = 16000
WINDOW_SECONDS = 10.0
N_FFT = 1024
HOP = 512
N_MELS = 64
EMBEDDING_DIM = 3 * N_MELS + 4
MODEL_NAME = "edgeasd-spectral"
MODEL_VERSION = "v1"
#: Floor of the mel powers before their logarithm (-100 dB): a window with a run of digital
#: zeros (a USB dropout, a DMA underrun) has frames of zero power, whose log is -inf and
#: turns the statistics into NaN. A floor, not ``+ eps``: the ONNX exporter folds the
#: addition of a constant this small away (measured with torch 2.13: the shipped v1 graph had
#: no Add before its Log), while a clamp is exported as a ``Max``/``Clip`` node.
LOG_FLOOR = 1e-10


class SpectralEmbedding(torch.nn.Module):
    """Waveform → L2-normalized log-mel statistics.

    Parameters
    ----------
    sample_rate : int
        Input sample rate in Hz.
    n_mels : int
        Number of mel bands; the embedding has ``3 * n_mels + 4`` dimensions.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_mels: int = N_MELS) -> None:
        super().__init__()
        fb = mel_filterbank(sample_rate, N_FFT, n_mels, fmin=20.0)
        self.register_buffer("filterbank", torch.from_numpy(fb))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Embed a batch of windows.

        Parameters
        ----------
        waveform : torch.Tensor, shape (batch, samples), float32

        Returns
        -------
        torch.Tensor, shape (batch, 3 * n_mels + 4), unit L2 norm
        """
        power = stft_magnitude(waveform, N_FFT, HOP, method="stft") ** 2  # (batch, bins, frames)
        mel = torch.matmul(self.filterbank, power)  # (batch, mels, frames)
        level = torch.log10(mel.clamp_min(LOG_FLOOR))  # bels = dB / 10
        band_mean = level.mean(dim=2)
        overall = band_mean.mean(dim=1, keepdim=True)
        shape = band_mean - overall
        band_std = level.std(dim=2, correction=0)
        flux = (level[:, :, 1:] - level[:, :, :-1]).abs().mean(dim=2)
        energy = torch.log10(mel.sum(dim=1).clamp_min(LOG_FLOOR))  # (batch, frames)
        e_mean = energy.mean(dim=1, keepdim=True)
        temporal = torch.cat(
            [
                overall / 10.0,
                energy.std(dim=1, correction=0, keepdim=True),
                energy.amax(dim=1, keepdim=True) - e_mean,
                e_mean - energy.amin(dim=1, keepdim=True),
            ],
            dim=1,
        )
        features = torch.cat([shape, band_std, flux, temporal], dim=1)
        return F.normalize(features, dim=1)


def metadata() -> ModelMetadata:
    """The metadata the spectral model carries."""
    return ModelMetadata(
        sample_rate=SAMPLE_RATE,
        window_seconds=WINDOW_SECONDS,
        embedding_dim=EMBEDDING_DIM,
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        training_data="none: fixed log-mel band statistics, no training",
    )


def build(out: str | Path) -> Path:
    """Export the spectral model to ``out`` and return the path."""
    return export_onnx(SpectralEmbedding(), out, metadata())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m edgeasd.train.spectral``."""
    from edgeasd.embedding.models import MODELS_DIR, SPECTRAL_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR / SPECTRAL_MODEL)
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
