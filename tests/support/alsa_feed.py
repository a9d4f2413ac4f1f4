"""A virtual ALSA capture device that plays given samples into PortAudio.

Tests use it to exercise the real capture path (sounddevice → PortAudio → ALSA) without a
microphone. :class:`AlsaFeed` writes an ALSA configuration that defines two PCMs:

- ``<name>_raw``: an ALSA ``file`` plugin over the ``null`` PCM whose *infile* is a raw
  ``FLOAT_LE`` file (or a FIFO) holding the samples;
- ``<name>``: a ``plug`` PCM in front of it with exactly that format, rate and channel
  count (a mismatch would make ALSA convert and silently drop periods).

The process that captures must see ``ALSA_CONFIG_PATH`` before it imports sounddevice, so
captures run in a subprocess started with :attr:`AlsaFeed.env`. Facts about the plugins
(measured with libportaudio2 19.6 and sounddevice 0.5.6):

- with a regular file (``realtime=False``) the ``null`` slave has no clock: all the audio
  arrives within milliseconds, and past the end of the file the plugin repeats stale
  data, so the feed appends ``tail_seconds`` of silence and consumers should stop after
  what they need;
- with ``realtime=True`` the infile is a FIFO that this process opens ``O_RDWR`` before
  the subprocess starts (otherwise the device probe hangs) and a writer thread fills at
  real-time pace, then keeps writing silence until :meth:`AlsaFeed.close` (a dry FIFO
  makes PortAudio's ``stop()``/``abort()`` hang).

Example
-------
>>> with AlsaFeed(tmp_path, samples, rate=16000, realtime=True) as feed:
...     subprocess.run([...], env=feed.env)     # capture from device feed.device_name
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ALSA_CONF = "/usr/share/alsa/alsa.conf"


class AlsaFeed:
    """Define an ALSA capture device ``name`` that delivers ``samples``.

    Parameters
    ----------
    directory : path-like
        Where the config and the raw file or FIFO are written (e.g. ``tmp_path``).
    samples : np.ndarray
        Shape ``(n,)`` (mono) or ``(n, channels)``, float in [-1, 1].
    rate : int
        The device's sample rate (its default rate, as PortAudio reports it).
    realtime : bool
        Deliver at real-time pace through a FIFO (a writer thread), instead of instantly
        from a file.
    name : str
        The device name to open (``device=feed.device_name``).
    tail_seconds : float
        Silence appended after the samples in file mode.
    block_frames : int
        Size of the writer's steps in real-time mode. ALSA's file plugin fills each
        period it cannot read completely from the FIFO with stale data, so the writer
        writes whole chunks that are a multiple of any power-of-two period size
        (4096 frames: 0.256 s at 16 kHz).
    keep_alive : bool
        In real-time mode, write silence after the samples (the default). With False the
        writer stops, so the device stalls (no frames reach PortAudio) until
        :meth:`resume`; a process blocked on the dry FIFO cannot stop its stream.

    Attributes
    ----------
    env : dict
        ``os.environ`` plus ``ALSA_CONFIG_PATH``, for the capturing subprocess.
    device_name : str
        The capture device's name.
    config_path : Path
        The ALSA configuration file.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        samples: np.ndarray,
        rate: int = 16000,
        realtime: bool = False,
        name: str = "feed",
        tail_seconds: float = 1.0,
        block_frames: int = 4096,
        keep_alive: bool = True,
    ) -> None:
        if not os.path.exists(ALSA_CONF):
            raise RuntimeError(f"{ALSA_CONF} missing: install libasound2 / alsa-utils")
        data = np.asarray(samples, dtype="<f4")
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"samples must be (n,) or (n, channels), got {data.shape}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rate, self.channels, self.realtime = int(rate), data.shape[1], realtime
        self.device_name = name
        self.samples = data
        self.infile = self.directory / (f"{name}.fifo" if realtime else f"{name}.raw")
        self.config_path = self.directory / f"{name}.asoundrc"
        self.config_path.write_text(
            f'pcm.{name}_raw {{ type file; slave.pcm "null"; file "/dev/null"; '
            f'infile "{self.infile}"; format "raw" }}\n'
            f'pcm.{name} {{ type plug; slave {{ pcm "{name}_raw"; format FLOAT_LE; '
            f"rate {self.rate}; channels {self.channels} }} }}\n"
        )
        self.env = dict(os.environ, ALSA_CONFIG_PATH=f"{ALSA_CONF}:{self.config_path}")
        self._stop = threading.Event()
        self._alive = threading.Event()  # write silence once the samples are out
        if keep_alive:
            self._alive.set()
        self.finished = threading.Event()  # all samples handed to the FIFO
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._pos = 0  # samples handed to the FIFO
        if realtime:
            if self.infile.exists():
                self.infile.unlink()
            os.mkfifo(self.infile)
            self._fd = os.open(self.infile, os.O_RDWR | os.O_NONBLOCK)
            self._block = int(block_frames)
            self._thread = threading.Thread(target=self._write_loop, daemon=True)
            self._thread.start()
        else:
            tail = np.zeros((round(tail_seconds * self.rate), self.channels), dtype="<f4")
            np.concatenate([data, tail]).tofile(self.infile)
            self.finished.set()

    def _write_all(self, payload: bytes) -> None:
        view = memoryview(payload)
        while view and not self._stop.is_set():
            _, ready, _ = select.select([], [self._fd], [], 0.1)
            if not ready:
                continue
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                continue

    def _write_loop(self) -> None:
        silence = np.zeros((self._block, self.channels), dtype="<f4").tobytes()
        start, sent = time.monotonic(), 0
        while not self._stop.is_set():
            due = start + sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:  # the reader stalled: do not burst to catch up
                start, sent = time.monotonic(), 0
            block = self.samples[self._pos : self._pos + self._block]
            if block.shape[0]:
                self._pos += block.shape[0]
                if block.shape[0] < self._block:  # keep every write a whole chunk
                    pad = np.zeros((self._block - block.shape[0], self.channels), "<f4")
                    block = np.concatenate([block, pad])
                self._write_all(block.tobytes())
                if self._pos >= self.samples.shape[0]:
                    self.finished.set()
                n = block.shape[0]
            else:
                if not self._alive.is_set():
                    self._alive.wait(0.1)
                    start, sent = time.monotonic(), 0
                    continue
                self._write_all(silence)
                n = self._block
            sent += n

    def resume(self) -> None:
        """Start writing silence after a ``keep_alive=False`` feed ran dry."""
        self._alive.set()

    def run_python(self, code: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run ``python -c code`` with :attr:`env` (so sounddevice sees the feed).

        Parameters
        ----------
        code : str
            The program.
        timeout : float
            Seconds before the subprocess is killed (raises ``TimeoutExpired``).

        Returns
        -------
        subprocess.CompletedProcess
            With text ``stdout`` and ``stderr``.
        """
        return subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        """Stop the writer and close the FIFO (only after the reader has closed)."""
        self._stop.set()
        self._alive.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AlsaFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def alsa_feed(tmp_path):
    """Factory fixture: ``alsa_feed(samples, rate=16000, realtime=False, **kw)`` returns
    an :class:`AlsaFeed` in its own folder under ``tmp_path``, closed after the test.

    Make it available to a test folder with ``from support.alsa_feed import alsa_feed``
    (plus ``# noqa: F401``) in that folder's ``conftest.py``, as ``tests/audio`` does.
    """
    feeds: list[AlsaFeed] = []

    def make(samples: np.ndarray, rate: int = 16000, realtime: bool = False, **kw) -> AlsaFeed:
        feed = AlsaFeed(tmp_path / f"alsa-feed-{len(feeds)}", samples, rate, realtime, **kw)
        feeds.append(feed)
        return feed

    yield make
    for feed in feeds:
        feed.close()
