"""A simulated machine with an injected fault: the source of ``edgeasd demo``.

It needs no hardware: the audio comes from the machine-sound simulator
(:func:`edgeasd.synth.render`), rendered clip by clip as the stream advances. The first
``seconds_normal`` seconds are a healthy machine, the following ``seconds_anomalous``
seconds the same machine (same unit, same operating condition) with a fault, and the last
``seconds_after`` seconds the healthy machine again (the fault repaired). Each clip
has its own seed (``seed + clip index``), so the normal part varies like real recordings
of one machine do, and with ``clip_seconds`` equal to the window length every window is
exactly one clip.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeasd.audio.sources import AudioBlock, BaseSource, Pacer
from edgeasd.errors import InputError


class DemoSource(BaseSource):
    """Normal machine sound, the same machine with a fault, normal again; then the source ends.

    Parameters
    ----------
    sample_rate : int
        Output rate (the model's), at least 8000 Hz.
    seconds_normal : float
        Length of the healthy part.
    seconds_anomalous : float
        Length of the faulty part (may be 0).
    seconds_after : float
        Length of the healthy part after the fault (the repair; may be 0).
    seed : int
        Seed of the first clip (clip ``i`` uses ``seed + i``).
    realtime : bool
        Deliver at real-time pace instead of as fast as the consumer takes the blocks.
    machine : str
        A machine type of :data:`edgeasd.synth.MACHINE_TYPES`.
    anomaly : str
        One of that machine's anomaly kinds.
    severity : float
        Fault severity, 0 to 3 (1 is obvious).
    block_seconds : float
        Length of the yielded blocks.
    clip_seconds : float
        Length of each simulated clip.

    Attributes
    ----------
    anomaly_starts_at : float
        Seconds from the start of the stream at which the fault begins
        (``seconds_normal``).
    attributes : dict
        The machine's fixed operating condition (first source-domain value of each
        attribute).
    """

    def __init__(
        self,
        sample_rate: int,
        seconds_normal: float = 120.0,
        seconds_anomalous: float = 60.0,
        seconds_after: float = 30.0,
        seed: int = 0,
        realtime: bool = False,
        machine: str = "fan",
        anomaly: str = "bearing",
        severity: float = 1.0,
        block_seconds: float = 1.0,
        clip_seconds: float = 10.0,
    ) -> None:
        from edgeasd.synth import MACHINE_TYPES

        if machine not in MACHINE_TYPES:
            raise InputError(
                f"unknown demo machine {machine!r}",
                help="choose one of: " + ", ".join(MACHINE_TYPES),
            )
        spec = MACHINE_TYPES[machine]
        if anomaly not in spec.anomalies:
            raise InputError(
                f"{machine} has no anomaly {anomaly!r}",
                help=f"{machine} anomalies: " + ", ".join(spec.anomalies),
            )
        for name, value in (
            ("seconds_normal", seconds_normal),
            ("seconds_anomalous", seconds_anomalous),
            ("seconds_after", seconds_after),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be >= 0, got {value!r}")
        if not seconds_normal + seconds_anomalous > 0:
            raise InputError("the demo needs seconds_normal + seconds_anomalous > 0")
        if not (block_seconds > 0 and clip_seconds > 0):
            raise InputError("block_seconds and clip_seconds must be positive")
        self.sample_rate = int(sample_rate)
        self.machine, self.anomaly, self.severity = machine, anomaly, float(severity)
        self.seed, self.realtime = int(seed), bool(realtime)
        self.seconds_normal = float(seconds_normal)
        self.seconds_anomalous = float(seconds_anomalous)
        self.seconds_after = float(seconds_after)
        self.anomaly_starts_at = self.seconds_normal
        self.attributes = {n: a.values("source")[0] for n, a in spec.attributes.items()}
        self.block_frames = max(1, round(block_seconds * self.sample_rate))
        self.clip_frames = max(2, round(clip_seconds * self.sample_rate))
        self.start_time: float | None = None
        self._frames = 0
        self._closed = False

    def _plan(self) -> Iterator[tuple[int, bool]]:
        """(frames, anomalous) of each clip, in order."""
        for total, anomalous in (
            (round(self.seconds_normal * self.sample_rate), False),
            (round(self.seconds_anomalous * self.sample_rate), True),
            (round(self.seconds_after * self.sample_rate), False),
        ):
            while total > 0:
                n = min(self.clip_frames, total)
                total -= n
                yield n, anomalous

    def _clip(self, index: int, frames: int, anomalous: bool) -> np.ndarray:
        from edgeasd.synth import render

        if frames < 2:  # the simulator needs two samples; keep the timeline exact
            return np.zeros(frames, dtype=np.float32)
        return render(
            self.machine,
            frames / self.sample_rate,
            self.sample_rate,
            seed=self.seed + index,
            attributes=self.attributes,
            anomaly=self.anomaly if anomalous else None,
            severity=self.severity,
        )

    def blocks(self) -> Iterator[AudioBlock]:
        """Yield the simulated stream; blocks never span the normal/faulty boundary."""
        pacer = Pacer(self.sample_rate, self.realtime)
        self.start_time = pacer.start_wall
        for index, (frames, anomalous) in enumerate(self._plan()):
            clip = self._clip(index, frames, anomalous)
            for start in range(0, clip.size, self.block_frames):
                if self._closed:
                    return
                samples = clip[start : start + self.block_frames]
                t = pacer.advance(samples.size)
                self._frames += samples.size
                yield AudioBlock(samples, t, source=f"demo:{self.machine}")

    def is_anomalous(self, start_time: float, seconds: float) -> bool:
        """Whether a window starting at UNIX time ``start_time`` overlaps the fault.

        Parameters
        ----------
        start_time : float
            The window's ``start_time``.
        seconds : float
            The window's length.

        Returns
        -------
        bool
            False before :meth:`blocks` has started.
        """
        if self.start_time is None or self.seconds_anomalous <= 0:
            return False
        offset = start_time - self.start_time
        fault_ends = self.anomaly_starts_at + self.seconds_anomalous
        return offset + seconds > self.anomaly_starts_at + 1e-9 and offset < fault_ends - 1e-9

    def stats(self) -> dict[str, Any]:
        """``frames``, ``overflows`` (0), the machine, the fault and when it starts."""
        return {
            "kind": "demo",
            "frames": self._frames,
            "overflows": 0,
            "machine": self.machine,
            "anomaly": self.anomaly,
            "anomaly_starts_at": self.anomaly_starts_at,
            "anomaly_start_time": (
                None if self.start_time is None else self.start_time + self.anomaly_starts_at
            ),
            "seconds": self._frames / self.sample_rate,
        }

    def close(self) -> None:
        """Stop after the current block."""
        self._closed = True
