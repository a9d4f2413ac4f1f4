"""Anti-aliased polyphase resampling, one-shot and block-wise.

Both paths use the filter of :func:`scipy.signal.resample_poly` (a Kaiser-windowed sinc,
beta 5, cutoff at the lower Nyquist frequency, ``10 * max(up, down)`` taps on each side)
and compute exactly its output, with numpy only: importing ``scipy.signal`` costs a
second of CPU, which a daemon's cold start cannot afford. The one-shot path runs the
streaming one on the whole signal, so a stream resampled block by block equals the
one-shot result at every block boundary. Measured for 48 kHz -> 16 kHz: -0.3 dB at
7 kHz, -1.8 dB at 7.5 kHz, -14 dB at 8.5 kHz, at least 55 dB attenuation from 10 kHz up.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgeasd.errors import InputError


def _ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    for name, sr in (("sr_in", sr_in), ("sr_out", sr_out)):
        if isinstance(sr, bool) or int(sr) != sr or sr <= 0:
            raise InputError(f"{name} must be a positive integer rate in Hz, got {sr!r}")
    g = gcd(int(sr_in), int(sr_out))
    return int(sr_out) // g, int(sr_in) // g


@lru_cache(maxsize=16)
def design_filter(up: int, down: int) -> np.ndarray:
    """The low-pass FIR filter of an ``up/down`` polyphase resampler (unit DC gain).

    Parameters
    ----------
    up, down : int
        Coprime interpolation and decimation factors.

    Returns
    -------
    np.ndarray
        Shape ``(20 * max(up, down) + 1,)`` float64 taps, equal to
        ``scipy.signal.firwin(20 * max_rate + 1, 1 / max_rate, window=("kaiser", 5.0))``.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    m = np.arange(2 * half_len + 1) - half_len
    h = np.sinc(m / max_rate) / max_rate * np.kaiser(2 * half_len + 1, 5.0)
    h /= h.sum()
    h.setflags(write=False)
    return h


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a signal by a rational factor with an anti-aliasing filter.

    Parameters
    ----------
    x : np.ndarray
        Shape ``(n,)``.
    sr_in, sr_out : int
        Input and output rates in Hz.

    Returns
    -------
    np.ndarray
        Shape ``(ceil(n * sr_out / sr_in),)``, ``float32``, equal to
        ``scipy.signal.resample_poly(x, up, down)``. Content above the lower Nyquist
        frequency is removed, not folded back.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise InputError(f"resample expects a 1-D signal, got shape {x.shape}")
    stream = StreamResampler(sr_in, sr_out)
    head = stream.process(x)
    return np.concatenate([head, stream.flush()])


class StreamResampler:
    """Block-wise polyphase resampler that equals :func:`resample` on the concatenation.

    Output sample ``m`` is ``sum_n up * h[m*down + L - n*up] * x[n]`` (``h`` the filter,
    ``L`` its half length), as in ``scipy.signal.resample_poly``. It needs input up to
    ``(m*down + L) / up``, so the stream lags by about ``L / up`` input samples;
    :meth:`flush` ends the stream (zeros after the last sample, like the one-shot path)
    and returns the rest, after which the total output length is
    ``ceil(n_in * sr_out / sr_in)``.

    Parameters
    ----------
    sr_in, sr_out : int
        Input and output rates in Hz.
    """

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        self.up, self.down = _ratio(sr_in, sr_out)
        self._identity = self.up == self.down == 1
        h = np.ones(1) if self._identity else design_filter(self.up, self.down) * self.up
        self._half = (h.size - 1) // 2
        self._taps = -(-h.size // self.up)  # taps per polyphase branch
        # branch p holds h[p], h[p + up], ...; reversed, so that a window of input in
        # time order dotted with it gives sum_i h[p + i*up] * x[newest - i]
        padded = np.zeros(self._taps * self.up)
        padded[: h.size] = h
        self._branches = np.ascontiguousarray(padded.reshape(self._taps, self.up).T[:, ::-1])
        self.reset()

    def reset(self) -> None:
        """Forget all input: the next block starts a new stream."""
        self._buf = np.zeros(self._taps - 1, dtype=np.float64)  # zeros before sample 0
        self._buf_start = -(self._taps - 1)  # input index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    @property
    def delay_in(self) -> int:
        """Input samples the stream holds back until more input (or :meth:`flush`) arrives."""
        return 0 if self._identity else self._half // self.up + 1

    def _emit(self, m_stop: int) -> np.ndarray:
        m0 = self._n_out
        if m_stop <= m0:
            return np.zeros(0, dtype=np.float32)
        out = np.empty(m_stop - m0)
        windows = sliding_window_view(self._buf, self._taps)  # windows[k] = buf[k:k+taps]
        # outputs m = first, first + up, ... share one branch; their newest inputs are
        # `down` apart, so they are a strided slice of the windows
        for first in range(m0, min(m0 + self.up, m_stop)):
            count = (m_stop - 1 - first) // self.up + 1
            q = first * self.down + self._half
            k0 = q // self.up - self._buf_start - self._taps + 1
            rows = windows[k0 : k0 + (count - 1) * self.down + 1 : self.down]
            out[first - m0 :: self.up] = rows @ self._branches[q % self.up]
        self._n_out = m_stop
        # keep only what future outputs can still need
        first_needed = (m_stop * self.down + self._half) // self.up - (self._taps - 1)
        drop = first_needed - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed a block and get every output sample it completes.

        Parameters
        ----------
        x : np.ndarray
            Shape ``(n,)``, any length (including 0).

        Returns
        -------
        np.ndarray
            Shape ``(m,)`` ``float32``; ``m`` varies from call to call.
        """
        x = np.asarray(x)
        if x.ndim != 1:
            raise InputError(f"StreamResampler expects 1-D blocks, got shape {x.shape}")
        if self._identity:
            self._n_in += x.size
            self._n_out += x.size
            return x.astype(np.float32, copy=True)
        self._buf = np.concatenate([self._buf, x.astype(np.float64)])
        self._n_in += x.size
        # output m is complete when its newest input (q // up) has arrived
        m_stop = max(self._n_out, (self._n_in * self.up - self._half - 1) // self.down + 1)
        return self._emit(m_stop)

    def flush(self) -> np.ndarray:
        """End the stream: treat the input as zero beyond its end and return the rest.

        Returns
        -------
        np.ndarray
            Shape ``(m,)`` ``float32``. The resampler is reset afterwards.
        """
        if self._identity:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        total = -(-self._n_in * self.up // self.down)
        newest = ((total - 1) * self.down + self._half) // self.up if total else 0
        pad = newest - (self._buf_start + self._buf.size) + 1
        if pad > 0:
            self._buf = np.concatenate([self._buf, np.zeros(pad)])
        out = self._emit(total)
        self.reset()
        return out
