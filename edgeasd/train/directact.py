"""Direct-ACT: the two-branch CNN embedding of Wilkinghoff et al., in PyTorch.

Both branches start from the raw 16 kHz waveform, so the exported ONNX graph is
self-contained (waveform in, embedding out):

* **spectrum branch**: ``log1p(|rFFT|)`` of the window cropped/zero-padded to a
  power-of-two length (131,072 samples for 10 s) through three strided 1-D
  convolutions with squeeze-and-excitation and a dense stack → 256 dims. It sees the
  stationary spectrum at 0.12 Hz resolution (shaft harmonics, sidebands).
* **spectrogram branch**: ``log1p(|STFT|)`` (Hann 1024, hop 512) with the temporal mean
  of each frequency subtracted, a per-frequency batch norm, and a small 2-D ResNet with
  squeeze-and-excitation, max-pooled over time → 256 dims. It sees temporal structure
  (impacts, cycles, transients) independent of the stationary spectrum.

The 512-d concatenation is L2-normalized for cosine scoring. ``log1p`` is applied to
both magnitudes because raw magnitudes span six orders and wreck int8 quantization.
``width`` scales every channel count (16 is the reference network; the shipped model's
width is chosen to fit the agent's CPU budget, see ``MODEL_CARD.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeasd.errors import InputError
from edgeasd.train.frontend import log_fft_magnitude, next_power_of_two, stft_magnitude


@dataclass(frozen=True)
class DirectACTConfig:
    """Hyper-parameters that define a Direct-ACT network (stored in checkpoints)."""

    sample_rate: int = 16000
    window_seconds: float = 10.0
    width: int = 16
    branch_dim: int = 256
    n_fft: int = 1024
    hop: int = 512
    fft_length: int = 0  # 0: the power of two at or below the window length

    def __post_init__(self) -> None:
        if self.width < 1 or self.branch_dim < 1:
            raise InputError("width and branch_dim must be positive")
        if self.fft_length and self.fft_length & (self.fft_length - 1):
            raise InputError(f"fft_length must be a power of two, got {self.fft_length}")
        if self.window_samples < self.n_fft:
            raise InputError("the window is shorter than one STFT frame")

    @property
    def window_samples(self) -> int:
        """Samples per window."""
        return round(self.sample_rate * self.window_seconds)

    @property
    def fft_samples(self) -> int:
        """Length of the full-window FFT of the spectrum branch (a power of two)."""
        if self.fft_length:
            return self.fft_length
        n = next_power_of_two(self.window_samples)
        return n if n == self.window_samples else n // 2

    @property
    def embedding_dim(self) -> int:
        """Width of the concatenated embedding."""
        return 2 * self.branch_dim

    def to_dict(self) -> dict:
        """Plain dict for checkpoints."""
        return asdict(self)


class SqueezeExcite(nn.Module):
    """Channel re-weighting by a bottleneck of the globally averaged activations."""

    def __init__(self, channels: int, ratio: int = 8) -> None:
        super().__init__()
        hidden = max(2, channels // ratio)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, ...) → same shape."""
        s = x.flatten(2).mean(dim=2)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s.reshape(*s.shape, *([1] * (x.dim() - 2)))


class ResBlock(nn.Module):
    """Pre-activation residual block of two 3×3 convolutions with SE."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.se = SqueezeExcite(c_out)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.MaxPool2d(stride, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, c_in, f, t) → (batch, c_out, ceil(f/stride), ceil(t/stride))."""
        r = self.conv1(F.relu(self.bn1(x)))
        r = self.se(self.conv2(F.relu(self.bn2(r))))
        return r + (x if self.skip is None else self.skip(x))


class SpectrumBranch(nn.Module):
    """``log1p(|rFFT|)`` of the full window → ``branch_dim``."""

    def __init__(self, cfg: DirectACTConfig) -> None:
        super().__init__()
        c = 8 * cfg.width
        self.length = cfg.fft_samples
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(1, c, 256, stride=64, padding=96, bias=False),
                nn.Conv1d(c, c, 64, stride=32, padding=16, bias=False),
                nn.Conv1d(c, c, 16, stride=4, padding=6, bias=False),
            ]
        )
        self.ses = nn.ModuleList([SqueezeExcite(c) for _ in self.convs])
        with torch.no_grad():
            n = self._convolve(torch.zeros(1, 1, self.length // 2)).numel()
        layers: list[nn.Module] = []
        for d_in in (n, c, c):
            layers += [nn.Linear(d_in, c, bias=False), nn.BatchNorm1d(c), nn.ReLU()]
        self.dense = nn.Sequential(*layers, nn.Linear(c, cfg.branch_dim, bias=False))

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        for conv, se in zip(self.convs, self.ses, strict=True):
            x = se(F.relu(conv(x)))
        return x

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """waveform: (batch, samples) → (batch, branch_dim)."""
        spec = log_fft_magnitude(waveform, self.length)[:, : self.length // 2]
        return self.dense(self._convolve(spec.unsqueeze(1)).flatten(1))


class SpectrogramBranch(nn.Module):
    """Mean-normalized ``log1p(|STFT|)`` → small 2-D ResNet → ``branch_dim``."""

    def __init__(self, cfg: DirectACTConfig) -> None:
        super().__init__()
        w = cfg.width
        self.n_fft, self.hop = cfg.n_fft, cfg.hop
        bins = cfg.n_fft // 2 + 1
        self.freq_norm = nn.BatchNorm1d(bins)
        self.stem = nn.Sequential(
            nn.Conv2d(1, w, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
        )
        chans = [w, w, 2 * w, 2 * w, 4 * w, 4 * w, 8 * w, 8 * w]
        strides = [1, 1, 2, 1, 2, 1, 2, 1]
        blocks, c_in = [], w
        for c_out, s in zip(chans, strides, strict=True):
            blocks.append(ResBlock(c_in, c_out, s))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks, nn.BatchNorm2d(c_in), nn.ReLU())
        frames = 1 + (cfg.window_samples - cfg.n_fft) // cfg.hop
        with torch.no_grad():
            f = self.blocks(self.stem(torch.zeros(1, 1, bins, frames))).shape[2]
        self.head = nn.Sequential(
            nn.BatchNorm1d(c_in * f), nn.Linear(c_in * f, cfg.branch_dim, bias=False)
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """waveform: (batch, samples) → (batch, branch_dim)."""
        spec = torch.log1p(stft_magnitude(waveform, self.n_fft, self.hop))  # (b, f, t)
        spec = self.freq_norm(spec - spec.mean(dim=2, keepdim=True))
        x = self.blocks(self.stem(spec.unsqueeze(1)))  # (b, c, f', t')
        return self.head(x.amax(dim=3).flatten(1))


class DirectACT(nn.Module):
    """Waveform → 512-d L2-normalized embedding (the exported network).

    Parameters
    ----------
    cfg : DirectACTConfig
    """

    def __init__(self, cfg: DirectACTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DirectACTConfig()
        self.spectrum = SpectrumBranch(self.cfg)
        self.spectrogram = SpectrogramBranch(self.cfg)

    def branches(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two un-normalized branch embeddings, each (batch, branch_dim)."""
        return self.spectrum(waveform), self.spectrogram(waveform)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """waveform: (batch, samples) float32 → (batch, 2 * branch_dim), unit L2 norm."""
        return F.normalize(torch.cat(self.branches(waveform), dim=1), dim=1)
