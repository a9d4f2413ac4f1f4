"""Feature front-ends shared by the embedding models, written as exportable torch code.

Every model edgeasd ships takes the raw waveform and computes its own features inside
the ONNX graph, so no feature code can drift between training and the agent. The
Fourier transforms are dense matrix products (:func:`rfft_magnitude`, a mixed-radix
Cooley–Tukey FFT) rather than ``torch.fft``/``torch.stft``: exported, those become
onnxruntime's ``DFT``/``STFT`` kernels, which took two thirds of a Direct-ACT model's
time (~20 ms of ~30 ms per 10 s window on one core), while the matrix products run on
the same optimized GEMM kernels as the network (~3 ms). Training and export use the
same code.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from edgeasd.audio.mel import mel_filterbank  # noqa: F401  (re-exported: torch-free, in numpy)
from edgeasd.errors import InputError


def next_power_of_two(n: int) -> int:
    """The smallest power of two that is ``>= n`` (``n >= 1``)."""
    if n < 1:
        raise InputError(f"length must be positive, got {n}")
    return 1 << (int(n) - 1).bit_length()


#: Largest DFT done as one matrix product; longer transforms are split into stages.
MAX_RADIX = 64


def fft_factors(n: int, max_radix: int = MAX_RADIX) -> list[int]:
    """Split a power of two ``n`` into near-equal power-of-two factors ``<= max_radix``.

    Each factor is one stage of the matrix-product FFT in :func:`rfft_magnitude`:
    fewer stages mean fewer passes over memory, smaller factors fewer multiplications.

    Examples
    --------
    >>> fft_factors(1024), fft_factors(131072)
    ([32, 32], [32, 64, 64])
    """
    if n < 2 or n & (n - 1):
        raise InputError(f"the FFT length must be a power of two >= 2, got {n}")
    bits, max_bits = n.bit_length() - 1, max(1, max_radix.bit_length() - 1)
    stages = -(-bits // max_bits)
    sizes = [bits // stages + (i < bits % stages) for i in range(stages)]
    return [1 << b for b in sorted(sizes)]


@lru_cache(maxsize=32)
def _twiddles(rows: int, cols: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(-2πi·r·c/n)`` for ``r < rows, c < cols`` as (cos, sin) float32 tensors.

    Cached: a training step would otherwise recompute the same tables every batch.
    Callers must not modify the returned tensors in place.
    """
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    angle = -2.0 * np.pi * ((r * c) % n) / n  # reduce first: exact for large r*c
    return (
        torch.from_numpy(np.cos(angle).astype(np.float32)),
        torch.from_numpy(np.sin(angle).astype(np.float32)),
    )


def _dft_along(t: torch.Tensor, matrix: torch.Tensor, axis: int) -> torch.Tensor:
    """Multiply ``matrix`` (k, f) into axis ``axis`` (length f) of ``t``: that axis → k."""
    moved = torch.movedim(t, axis, -2)
    return torch.movedim(torch.matmul(matrix.to(t.dtype), moved), -2, axis)


def rfft_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``|rFFT|`` of the last axis, computed with dense matrix products.

    A mixed-radix Cooley–Tukey FFT: the length ``n = f1·f2·…·fm`` (:func:`fft_factors`)
    is viewed as an m-dimensional array, each axis gets a dense DFT of size ``fi`` as a
    matrix product, and twiddle factors ``exp(-2πi·k·r/n)`` go between the stages. The
    last stage computes only the ``fm/2 + 1`` outputs the one-sided spectrum needs.

    Why not ``torch.fft``/``torch.stft``: in the exported ONNX graph those become
    onnxruntime's ``DFT``/``STFT`` kernels, which took ~10 ms each for one 10 s window
    (two thirds of the model's time, and in float whatever the rest is quantized to).
    Matrix products run on the BLAS-class kernels that also run the network, ~6× faster
    here. Accuracy: ~1e-6 of the largest magnitude in float32 (tested against numpy).

    Parameters
    ----------
    x : torch.Tensor, shape (..., n)
        Real signal; ``n`` a power of two.

    Returns
    -------
    torch.Tensor, shape (..., n // 2 + 1)
    """
    n = x.shape[-1]
    factors = fft_factors(n)
    lead = x.shape[:-1]
    re: torch.Tensor = x.reshape(*lead, *factors)
    im: torch.Tensor | None = None
    rest = n
    # Stages 1..m-1: DFT along axis i (left product), then twiddles W_rest^(k_i * r).
    for i, f in enumerate(factors[:-1]):
        cos, sin = _twiddles(f, f, f)
        axis = len(lead) + i
        remaining = rest // f

        if im is None:
            re, im = _dft_along(re, cos, axis), _dft_along(re, sin, axis)
        else:
            re, im = (
                _dft_along(re, cos, axis) - _dft_along(im, sin, axis),
                _dft_along(re, sin, axis) + _dft_along(im, cos, axis),
            )
        # Twiddle W_rest^(k·r) for the flattened remaining index r (shape f × remaining).
        tc, ts = _twiddles(f, remaining, rest)
        tshape = (f, *factors[i + 1 :])
        tc, ts = tc.reshape(tshape).to(re.dtype), ts.reshape(tshape).to(re.dtype)
        re, im = re * tc - im * ts, re * ts + im * tc
        rest = remaining
    f = factors[-1]
    cos, sin = _twiddles(f, f // 2 + 1, f)
    cos, sin = cos.to(re.dtype), sin.to(re.dtype)
    if im is None:
        out_re, out_im = re @ cos, re @ sin
    else:
        out_re, out_im = re @ cos - im @ sin, re @ sin + im @ cos
    mag = torch.sqrt(out_re * out_re + out_im * out_im)  # (..., k1, ..., k_m) with k_m halved
    # Output index k = k1 + f1·k2 + f1·f2·k3 + …: reverse the stage axes, then flatten.
    k = len(lead)
    mag = mag.permute(*range(k), *range(mag.dim() - 1, k - 1, -1))
    return mag.reshape(*lead, -1)[..., : n // 2 + 1]


def stft_magnitude(
    x: torch.Tensor, n_fft: int = 1024, hop: int = 512, method: str = "matmul"
) -> torch.Tensor:
    """Magnitude STFT with a periodic Hann window, frames fully inside the signal.

    ``method="matmul"``: frames are built by reshaping (the hop must divide ``n_fft``)
    and transformed by :func:`rfft_magnitude`, so the exported graph has no ``STFT``
    operator (~4× faster in onnxruntime). ``method="stft"``: ``torch.stft``, exported as
    onnxruntime's ``STFT`` kernel: slower, but its intermediate buffers take ~10 MB less
    memory per 10 s window, which is what the always-running default model needs (see
    ``edgeasd.train.spectral``).

    Parameters
    ----------
    x : torch.Tensor, shape (batch, samples)
        Waveform.
    n_fft, hop : int
        Frame length (a power of two) and hop in samples (a divisor of ``n_fft`` for
        ``"matmul"``).
    method : {"matmul", "stft"}
        How the transform is computed (and exported), see above.

    Returns
    -------
    torch.Tensor, shape (batch, n_fft // 2 + 1, frames)
        ``|STFT|`` with ``frames = 1 + (samples - n_fft) // hop``.
    """
    if method == "stft":
        window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
        spec = torch.stft(
            x, n_fft=n_fft, hop_length=hop, window=window, center=False, return_complex=True
        )
        return spec.abs()
    if method != "matmul":
        raise InputError(f"method must be 'matmul' or 'stft', got {method!r}")
    if hop < 1 or n_fft % hop:
        raise InputError(f"the hop ({hop}) must divide the frame length ({n_fft})")
    samples = x.shape[-1]
    if samples < n_fft:
        raise InputError(f"{samples} samples is shorter than one frame of {n_fft}")
    frames = 1 + (samples - n_fft) // hop
    per_frame = n_fft // hop
    rows = x[:, : (frames + per_frame - 1) * hop].reshape(x.shape[0], -1, hop)
    framed = torch.cat([rows[:, j : j + frames] for j in range(per_frame)], dim=2)
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    return rfft_magnitude(framed * window).transpose(1, 2)


def log_fft_magnitude(x: torch.Tensor, length: int) -> torch.Tensor:
    """``log1p(|rFFT|)`` of the waveform cropped or zero-padded to ``length`` samples.

    The raw magnitudes span six orders of magnitude, which ruins int8 quantization of
    the layers that follow; ``log1p`` compresses them to a range int8 represents well.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, samples)
        Waveform.
    length : int
        FFT length, a power of two.

    Returns
    -------
    torch.Tensor, shape (batch, length // 2 + 1)
    """
    n = x.shape[-1]
    if n >= length:
        x = x[:, :length]
    else:
        x = F.pad(x, (0, length - n))
    return torch.log1p(rfft_magnitude(x))
