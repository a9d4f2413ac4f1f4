"""Live capture from a sound card through PortAudio (the ``sounddevice`` package).

``sounddevice`` is imported lazily (see :mod:`edgeasd.audio.devices`), and devices are
chosen by name, never only by index (``list_devices`` and ``resolve_device`` are
re-exported here). The PortAudio callback only copies frames into a preallocated
:class:`~edgeasd.audio.ring.CaptureRing` and counts overflows; downmix and resampling to
the model's rate happen in the consumer's thread.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeasd.audio.devices import DeviceInfo, import_sounddevice, list_devices, resolve_device
from edgeasd.audio.io import check_channel
from edgeasd.audio.quality import Quality, assess
from edgeasd.audio.ring import CaptureRing, SegmentReader
from edgeasd.audio.sources import AudioBlock, BaseSource
from edgeasd.errors import DeviceError

__all__ = [
    "DeviceInfo",
    "MicrophoneSource",
    "Recording",
    "list_devices",
    "record",
    "resolve_device",
]

log = logging.getLogger(__name__)


#: Default frames per PortAudio callback (21 ms at 48 kHz, 64 ms at 16 kHz).
BLOCKSIZE = 1024

#: Devices reporting more input channels than this are virtual (ALSA ``default``, ``plug``,
#: PulseAudio report up to 128): for them "mix" opens one channel and ALSA converts
#: (set ``source.capture_channels`` to open another number).
MAX_HARDWARE_CHANNELS = 32


def default_capture_channels(device_channels: int, channel: str | int) -> int:
    """How many channels to open when the configuration does not say.

    Parameters
    ----------
    device_channels : int
        The device's maximum input channels.
    channel : "mix" or int
        The channel selection.

    Returns
    -------
    int
        ``index + 1`` for a channel index; for ``"mix"``, all channels of a hardware
        device, or 1 for a virtual device (see :data:`MAX_HARDWARE_CHANNELS`).
    """
    if channel != "mix":
        return int(channel) + 1
    return 1 if device_channels > MAX_HARDWARE_CHANNELS else max(1, device_channels)


class MicrophoneSource(BaseSource):
    """Capture from an input device, resampled and downmixed to the model's format.

    The stream is opened and started by the constructor, so a missing or unusable device
    fails right away.

    Parameters
    ----------
    device : str or None
        Device name substring(s), ``None`` for the default input.
    sample_rate : int
        Output rate (the model's).
    channels : "mix" or int
        Average the captured channels, or take one (0-based index).
    capture_rate : int, optional
        Rate the device runs at; ``None`` means the device's default rate.
    capture_channels : int, optional
        Channels to open (the configuration's ``source.capture_channels``); ``None``:
        see :func:`default_capture_channels`. A virtual ALSA device converts silently
        (and may drop periods) when this differs from what its slave delivers, so set
        ``source.capture_channels`` for such devices.
    blocksize : int, optional
        Frames per callback; default :data:`BLOCKSIZE`. 0 lets PortAudio choose (it may
        pick odd period sizes, which some ALSA plugins handle badly).
    latency : str or float, optional
        PortAudio latency (``"low"``, ``"high"`` or seconds); default ``"high"``, the
        robust choice for a monitoring service.
    stall_seconds : float
        :meth:`blocks` raises :class:`DeviceError` after this long without frames.
    buffer_seconds : float
        Ring buffer capacity between the callback and the consumer; frames arriving
        while it is full are dropped and counted.
    """

    def __init__(
        self,
        device: str | None = None,
        sample_rate: int = 16000,
        channels: str | int = "mix",
        capture_rate: int | None = None,
        capture_channels: int | None = None,
        blocksize: int | None = None,
        latency: str | float | None = None,
        stall_seconds: float = 5.0,
        buffer_seconds: float = 30.0,
    ) -> None:
        sd = import_sounddevice()
        self.sample_rate = int(sample_rate)
        self.channel = channels
        self.stall_seconds = float(stall_seconds)
        self.info = resolve_device(device)
        self.device = device
        if capture_channels is None:
            capture_channels = default_capture_channels(self.info.channels, channels)
        if not 1 <= capture_channels <= self.info.channels:
            raise DeviceError(
                f"device {self.info.name!r} has {self.info.channels} input channels, "
                f"cannot open {capture_channels}",
                help="lower source.capture_channels or source.channels",
            )
        check_channel(channels, capture_channels, f"device {self.info.name!r}")
        self.capture_channels = int(capture_channels)
        self.capture_rate = int(capture_rate or round(self.info.default_samplerate))
        self.ring = CaptureRing(
            max(1, round(buffer_seconds * self.capture_rate)),
            self.capture_channels,
            self.capture_rate,
        )
        self._closed = False
        self._frames_out = 0
        try:
            sd.check_input_settings(
                device=self.info.index,
                channels=self.capture_channels,
                dtype="float32",
                samplerate=self.capture_rate,
            )
            self._stream = sd.InputStream(
                device=self.info.index,
                samplerate=self.capture_rate,
                channels=self.capture_channels,
                dtype="float32",
                blocksize=BLOCKSIZE if blocksize is None else int(blocksize),
                latency="high" if latency is None else latency,
                callback=self.ring.callback,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(
                f"cannot capture from {self.info.name!r} at {self.capture_rate} Hz with "
                f"{self.capture_channels} channel(s): {exc}",
                help=f"the device's default rate is {self.info.default_samplerate:.0f} Hz; "
                "leave source.capture_rate unset to use it, check that no other program "
                "holds the device (`fuser -v /dev/snd/*`)",
            ) from exc
        log.info(
            "capturing from %r at %d Hz, %d ch, delivering %d Hz mono",
            self.info.name,
            self.capture_rate,
            self.capture_channels,
            self.sample_rate,
        )

    def blocks(self) -> Iterator[AudioBlock]:
        """Yield captured audio until :meth:`close`.

        Raises
        ------
        DeviceError
            No frames for ``stall_seconds`` (a dead callback or unplugged device), or
            the stream stopped by itself.
        """
        reader = SegmentReader(self.capture_rate, self.sample_rate, self.channel, self.info.name)
        min_read = max(1, self.capture_rate // 10)  # wake the consumer ~10 times/s
        last_data = time.monotonic()
        while not self._closed:
            self.ring.event.wait(timeout=min(0.25, self.stall_seconds))
            self.ring.event.clear()
            if self._closed:
                return
            now = time.monotonic()
            if self.ring.available() < min_read and now - last_data < self.stall_seconds / 2:
                continue
            segments = self.ring.read()
            if not segments:
                self._check_alive(now - last_data)
                continue
            last_data = now
            for block in reader.convert(segments):
                self._frames_out += block.samples.size
                yield block

    def _check_alive(self, idle: float) -> None:
        if not self._stream.active and not self._closed:
            raise DeviceError(
                f"audio stream from {self.info.name!r} stopped",
                help="the device was probably unplugged; the service will retry",
            )
        if idle >= self.stall_seconds:
            raise DeviceError(
                f"no audio from {self.info.name!r} for {idle:.1f} s",
                help="check the device and its cable; the service restarts the capture",
            )

    def stats(self) -> dict[str, Any]:
        """Counters: ``frames`` delivered (model rate), ``captured`` frames (device rate),
        ``overflows`` (PortAudio input overflows), ``dropped`` frames (ring full),
        ``callbacks``, ``device``, ``capture_rate``."""
        ring = self.ring
        return {
            "kind": "microphone",
            "device": self.info.name,
            "capture_rate": self.capture_rate,
            "capture_channels": self.capture_channels,
            "frames": self._frames_out,
            "captured": ring.captured,
            "overflows": ring.overflows,
            "dropped": ring.dropped,
            "callbacks": ring.callbacks,
        }

    def close(self, timeout: float = 2.0) -> None:
        """Stop and close the stream without waiting more than ``timeout`` seconds.

        PortAudio's stop can hang on a wedged device; it then runs on in a daemon thread
        and is abandoned with a warning, and PortAudio's exit handler (which would wait
        for it) is skipped so that the process can still exit.
        """
        if self._closed:
            return
        self._closed = True
        self.ring.event.set()
        stream = self._stream

        def _shut() -> None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # closing is best effort
                log.warning("closing the audio stream failed: %s", exc)

        closer = threading.Thread(target=_shut, name="edgeasd-stream-close", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            log.warning("audio stream did not close within %.1f s; abandoning it", timeout)
            # PortAudio's own exit handler would wait for the wedged stream forever and
            # keep the process (and a service restart) from ending: skip it.
            sd = import_sounddevice()
            handler = getattr(sd, "_exit_handler", None)
            if handler is not None:
                atexit.unregister(handler)


@dataclass(frozen=True)
class Recording:
    """A short capture for ``edgeasd doctor``.

    Attributes
    ----------
    samples : np.ndarray
        Shape ``(n,)`` ``float32`` at ``sample_rate``.
    sample_rate : int
        Rate of ``samples``.
    quality : Quality
        Level, peak, clipping and status of the recording.
    device : str
        Name of the device recorded from.
    """

    samples: np.ndarray
    sample_rate: int
    quality: Quality
    device: str


def record(
    seconds: float = 0.5,
    device: str | None = None,
    sample_rate: int = 16000,
    quality: dict[str, Any] | None = None,
    **options: Any,
) -> Recording:
    """Record a few seconds from a device and measure the level.

    Parameters
    ----------
    seconds : float
        Duration to keep.
    device : str or None
        Device name substring(s); ``None`` for the default input.
    sample_rate : int
        Output rate.
    quality : dict, optional
        Keyword arguments of :func:`~edgeasd.audio.quality.assess` (the configuration's
        ``quality`` thresholds); ``None``: its defaults.
    **options
        Further :class:`MicrophoneSource` arguments (``channels``, ``capture_rate``...).

    Returns
    -------
    Recording
    """
    n = max(1, round(seconds * sample_rate))
    parts, got = [], 0
    with MicrophoneSource(device, sample_rate, **options) as source:
        for block in source.blocks():
            parts.append(block.samples)
            got += block.samples.size
            if got >= n:
                break
        name = source.info.name
    samples = np.concatenate(parts)[:n]
    return Recording(samples, sample_rate, assess(samples, **(quality or {})), name)
