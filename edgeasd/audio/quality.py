"""Signal quality of a window: no signal (silence, a dead microphone, dropouts, NaN), clipping.

Only windows without information go unscored (:attr:`Quality.scorable` false: ``nan``,
``dead``, ``dropout``, ``silence``); the daemon reports them as ``no-signal`` and, when they last,
alerts on its own (``quality.no_signal_alert_seconds``). A clipped window is scored like
any other and flagged (a loud fault is often what makes a microphone clip), but it is never
enrolled (:attr:`Quality.ok`): the bank must not learn clipping as normal.

Levels are in dBFS relative to a full-scale *square* wave (RMS 1.0 = 0 dBFS), so a
full-scale sine reads -3 dBFS. The RMS is taken after removing the DC offset, so that a
constant offset does not pass for sound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeasd.errors import InputError

#: Quality status values, in the order they are checked.
STATUSES = ("nan", "dead", "dropout", "clipping", "silence", "ok")

#: Statuses of windows without (complete) information: never scored, never enrolled.
#: ``embed_failed`` is set by the daemon, not by :func:`assess`: the model could not embed
#: the window (its ``nan`` likewise covers a non-finite embedding).
NO_SIGNAL = ("nan", "dead", "dropout", "silence", "embed_failed")

#: Level reported for a signal without any variation (instead of -inf, which JSON lacks).
FLOOR_DBFS = -240.0

#: Default silence floor: below the self-noise of practically any powered microphone and
#: far below a running machine (the DCASE 2023 and MIMII clips sit between -46 and -29 dBFS).
SILENCE_DBFS = -70.0

#: Default clip level: |x| at or above this counts as clipped.
CLIP_LEVEL = 0.999

#: Default limit on the fraction of clipped samples (0.1 %: 160 samples in 10 s at 16 kHz).
CLIP_FRACTION = 0.001

#: Default dead-signal threshold on the peak-to-peak range: one 16-bit step. A signal that
#: varies by no more than this is digital zero, a stuck value or a disconnected input.
DEAD_RANGE = 1.0 / 32768.0


#: Default dropout length: a run of at least this many exact digital zeros inside a window
#: that is not dead (a USB microphone dropping out, a DMA underrun). 160 samples are 10 ms
#: at 16 kHz; the longest exact-zero run in the 36 real DCASE 2023 / MIMII clips of the test
#: data is 3 samples (0.19 ms), so running machines stay far from it.
DROPOUT_SAMPLES = 160


@dataclass(frozen=True)
class Quality:
    """The quality of one window.

    Attributes
    ----------
    rms_dbfs : float
        RMS level of the DC-free signal in dBFS (RMS 1.0 = 0 dBFS), at least
        :data:`FLOOR_DBFS`.
    peak : float
        Largest absolute sample value.
    clip_fraction : float
        Fraction of samples with ``|x| >= clip_level``.
    dc_offset : float
        Mean of the samples.
    status : str
        ``"ok"``, ``"silence"``, ``"clipping"``, ``"dropout"``, ``"dead"`` or ``"nan"``
        (NaN or infinite samples; the levels are then those of the finite samples).
    """

    rms_dbfs: float
    peak: float
    clip_fraction: float
    dc_offset: float
    status: str

    @property
    def ok(self) -> bool:
        """Whether the window may be enrolled (good signal, not clipped)."""
        return self.status == "ok"

    @property
    def scorable(self) -> bool:
        """Whether the window carries information to score (clipped windows do)."""
        return self.status not in NO_SIGNAL

    @property
    def clipped(self) -> bool:
        """Whether more than the tolerated fraction of samples is clipped."""
        return self.status == "clipping"

    def as_dict(self) -> dict:
        """JSON-ready fields (all plain floats and strings)."""
        return asdict(self)


def assess(
    samples: np.ndarray,
    *,
    silence_dbfs: float = SILENCE_DBFS,
    clip_level: float = CLIP_LEVEL,
    clip_fraction: float = CLIP_FRACTION,
    dead_range: float = DEAD_RANGE,
    dropout_samples: int = DROPOUT_SAMPLES,
) -> Quality:
    """Measure a window and classify it.

    The checks run in the order of :data:`STATUSES`; the first that applies wins:

    - ``nan``: a sample is NaN or infinite (a broken driver or file, a float stream's
      burst of NaN);
    - ``dead``: peak-to-peak range ``<= dead_range`` (digital zeros, a value stuck at DC
      or at a rail, an unplugged input);
    - ``dropout``: a run of at least ``dropout_samples`` exact zeros (part of the window
      lost: a USB microphone dropping out, a DMA underrun);
    - ``clipping``: more than ``clip_fraction`` of the samples have ``|x| >= clip_level``;
    - ``silence``: the DC-free RMS level is below ``silence_dbfs``;
    - ``ok``: otherwise.

    Parameters
    ----------
    samples : np.ndarray
        Shape ``(n,)``, float in [-1, 1], ``n >= 1``.
    silence_dbfs : float
        Silence floor in dBFS (default :data:`SILENCE_DBFS`).
    clip_level : float
        Absolute value counted as clipped (default :data:`CLIP_LEVEL`).
    clip_fraction : float
        Largest tolerated fraction of clipped samples (default :data:`CLIP_FRACTION`).
    dead_range : float
        Largest peak-to-peak range still counted as dead (default :data:`DEAD_RANGE`).
    dropout_samples : int
        Shortest run of exact zeros counted as a dropout (default :data:`DROPOUT_SAMPLES`).

    Returns
    -------
    Quality

    Raises
    ------
    InputError
        Empty or non-1-D input.
    """
    x = np.asarray(samples)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"assess expects a non-empty 1-D window, got shape {x.shape}")
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = x[np.isfinite(x)]
        opts = {"silence_dbfs": silence_dbfs, "clip_level": clip_level}
        opts.update(clip_fraction=clip_fraction, dead_range=dead_range)
        q = assess(finite, **opts) if finite.size else Quality(FLOOR_DBFS, 0.0, 0.0, 0.0, "dead")
        return Quality(q.rms_dbfs, q.peak, q.clip_fraction, q.dc_offset, "nan")
    x64 = x.astype(np.float64, copy=False)
    dc = float(x64.mean())
    var = float(np.var(x64))
    rms_dbfs = max(10.0 * np.log10(var) if var > 0 else FLOOR_DBFS, FLOOR_DBFS)
    peak = max(abs(lo), abs(hi))
    clipped = float(np.count_nonzero(np.abs(x) >= clip_level)) / x.size
    if hi - lo <= dead_range:
        status = "dead"
    elif longest_zero_run(x, dropout_samples) >= dropout_samples:
        status = "dropout"
    elif clipped > clip_fraction:
        status = "clipping"
    elif rms_dbfs < silence_dbfs:
        status = "silence"
    else:
        status = "ok"
    return Quality(float(rms_dbfs), peak, clipped, dc, status)


def longest_zero_run(x: np.ndarray, at_least: int = 1) -> int:
    """Length of the longest run of exact zeros in ``x`` (shape ``(n,)``).

    Returns 0 without looking for runs when ``x`` holds fewer than ``at_least`` zeros.
    """
    zero = x == 0
    if int(np.count_nonzero(zero)) < max(1, at_least):
        return 0
    edges = np.diff(np.concatenate(([0], zero.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max())
