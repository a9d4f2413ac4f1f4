"""Machine specifications and the per-clip rendering context.

A :class:`MachineSpec` names a machine type's attributes (with the values used in the
source and in the target domain) and its anomaly kinds, and points at the function
that synthesizes its sound. The function receives a :class:`Clip`: the clip length,
the attribute values, the anomaly and its severity, and independent random streams.

Random streams are derived by name, so that adding a fault to a clip does not change
the random numbers the healthy machine consumes: ``render(..., seed=s)`` and
``render(..., seed=s, anomaly="bearing")`` are the same machine, the same minute, with
and without the defect. Constants of the physical unit (number of fan blades, gear
teeth, resonance frequencies) come from :meth:`Clip.unit`, seeded by machine type and
section only: every clip of ``section_00`` is the same machine.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from edgeasd.synth.dsp import freq_axis, rms, unit

#: Unit-level responses kept between clips of one process (write_dataset renders many
#: clips of one unit): key -> array. Bounded, least recently used evicted.
_UNIT_MEMO: OrderedDict = OrderedDict()
_UNIT_MEMO_SIZE = 48

#: Level of an additive fault component relative to the healthy machine at severity 1
#: (-6 dB: obvious); severity 0.1 puts it at -26 dB (subtle).
FAULT_GAIN = 0.5


def _tag(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


@dataclass(frozen=True)
class Attribute:
    """One operating condition recorded in the file name (``<name>_<value>``).

    Attributes
    ----------
    source, target : tuple of str
        Values used in the source and in the target domain (file-name tokens; numeric
        attributes are parsed with ``float``).
    description : str
        What the value means physically.
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    description: str

    def values(self, domain: str) -> tuple[str, ...]:
        """The values of ``domain`` (``"source"`` or ``"target"``)."""
        return self.source if domain == "source" else self.target


class Sound(NamedTuple):
    """A machine model's output.

    Attributes
    ----------
    signal : ndarray, shape (n,)
        The machine's sound at its housing (before room, microphone and background).
    healthy_rms : float
        RMS of the healthy part; background noise is set relative to it (an added fault
        does not raise the background) and the clip level is normalized by it.
    """

    signal: np.ndarray
    healthy_rms: float


@dataclass
class Clip:
    """Everything a sound model needs to render one clip.

    Attributes
    ----------
    machine : str
    section : int
    n, sr : int
        Number of samples and sample rate.
    attrs : dict of str to str
        Attribute values (file-name tokens).
    anomaly : str or None
    severity : float
    seed : int
        Clip seed; :meth:`stream` derives named generators from it.
    operating : float
        Relative drift of every numeric operating attribute read with :meth:`num`
        (0: the nominal value; see :mod:`edgeasd.synth.drift`).
    """

    machine: str
    section: int
    n: int
    sr: int
    attrs: dict[str, str]
    anomaly: str | None
    severity: float
    seed: int
    operating: float = 0.0
    _f: np.ndarray | None = field(default=None, repr=False)

    @property
    def f(self) -> np.ndarray:
        """Frequencies of the clip's ``rfft`` bins, shape (n // 2 + 1,)."""
        if self._f is None:
            self._f = freq_axis(self.n, self.sr)
        return self._f

    @property
    def seconds(self) -> float:
        """Clip duration in seconds."""
        return self.n / self.sr

    def num(self, name: str) -> float:
        """The numeric value of attribute ``name`` (times ``1 + operating``)."""
        value = float(self.attrs[name])
        return value * (1.0 + self.operating) if self.operating else value

    def stream(self, name: str) -> np.random.Generator:
        """A random generator for this clip, independent for each ``name``."""
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.seed >> 32, _tag(name)])

    def unit(self, name: str) -> np.random.Generator:
        """A random generator for constants of the physical machine (type and section)."""
        return np.random.default_rng([0x5EED, _tag(self.machine), self.section, _tag(name)])

    def unit_memo(self, key: Hashable, make: Callable[[], np.ndarray]) -> np.ndarray:
        """``make()``, remembered per machine unit and clip length.

        For frequency responses that depend only on the unit's constants (housing
        modes, room, microphone): ``make`` must be a pure function of the unit (draw
        only from :meth:`unit` generators), so remembering it changes no result. The
        returned array is shared: do not modify it in place.
        """
        full = (self.machine, self.section, self.n, self.sr, key)
        if full in _UNIT_MEMO:
            _UNIT_MEMO.move_to_end(full)
            return _UNIT_MEMO[full]
        value = make()
        value.flags.writeable = False
        _UNIT_MEMO[full] = value
        while len(_UNIT_MEMO) > _UNIT_MEMO_SIZE:
            _UNIT_MEMO.popitem(last=False)
        return value

    def mains_time(self) -> np.ndarray:
        """Sample times (s) shifted by the clip's random mains phase, shape (n,).

        Everything fed by the mains (motor hum, transformer hum) hums in step: they
        share this time axis, and fixed per-unit phases, so their sum is stable.
        """
        return np.arange(self.n) / self.sr + self.stream("mains").uniform(0.0, 0.1)

    def fault(self, kind: str) -> float:
        """The severity if this clip has anomaly ``kind``, else 0.0."""
        return self.severity if self.anomaly == kind else 0.0


def with_fault(healthy: np.ndarray, extra: np.ndarray, severity: float) -> np.ndarray:
    """Add a fault component at ``FAULT_GAIN * severity`` times the healthy RMS.

    Parameters
    ----------
    healthy, extra : ndarray, shape (n,)
    """
    if severity <= 0:
        return healthy
    return healthy + FAULT_GAIN * severity * rms(healthy) * unit(extra)


@dataclass(frozen=True)
class MachineSpec:
    """A simulated machine type.

    Attributes
    ----------
    name : str
        Directory name in the dataset (DCASE style).
    description : str
        One line on what the machine is.
    attributes : dict of str to Attribute
        In file-name order.
    anomalies : dict of str to str
        Anomaly kind -> the fault signature it produces.
    model : callable
        ``model(clip) -> Sound``.
    position : str, optional
        The attribute naming the microphone position, if any: each of its values gets
        a fixed directivity weighting (:func:`edgeasd.synth.background.position_response`).
    """

    name: str
    description: str
    attributes: dict[str, Attribute]
    anomalies: dict[str, str]
    model: Callable[[Clip], Sound] = field(repr=False)
    position: str | None = None

    def to_json(self) -> dict:
        """A JSON-serializable summary (for the dataset manifest)."""
        return {
            "description": self.description,
            "attributes": {
                k: {
                    "source": list(a.source),
                    "target": list(a.target),
                    "description": a.description,
                }
                for k, a in self.attributes.items()
            },
            "anomalies": dict(self.anomalies),
        }
